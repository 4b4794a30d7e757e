//! The report as text (an aligned table) or as one JSON object.

use super::{Kind, Reach, Row};
pub use crate::units::human;

fn reach_text(r: &Reach) -> String {
    match r {
        Reach::Yes => "yes".into(),
        Reach::No(_) => "no".into(),
        Reach::Unknown => "-".into(),
        Reach::Nodes { up, of } => format!("{up}/{of}"),
    }
}

/// A count as shown: a `via` row stands for the whole cluster behind
/// another gateway, whose UUID no location log line ever names.
fn counted(r: &Row, shown: String) -> String {
    if r.kind == Kind::Via {
        "-".into()
    } else {
        shown
    }
}

/// The plain report (format in the module documentation).
pub fn render_text(rows: &[Row]) -> String {
    let header = [
        "NAME",
        "KIND",
        "UUID",
        "REACHABLE",
        "KEYS",
        "SIZE",
        "FREE",
        "DETAIL",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(str::to_owned)];
    for r in rows {
        let indent = if r.member { "  " } else { "" };
        let mut detail = match &r.reach {
            Reach::No(why) => why.clone(),
            Reach::Unknown if r.kind == Kind::Unreached => "no remote here leads to it".into(),
            _ => String::new(),
        };
        if !r.lagging.is_empty() {
            let lag = format!("lacks the gateway's {}", r.lagging.join(", "));
            detail = if detail.is_empty() {
                lag
            } else {
                format!("{detail} / {lag}")
            };
        }
        table.push([
            format!("{indent}{}", r.name),
            r.kind.as_str().to_owned(),
            r.uuid.clone(),
            reach_text(&r.reach),
            counted(r, r.keys.to_string()),
            counted(r, human(r.bytes)),
            r.free.map(human).unwrap_or_else(|| "-".into()),
            detail,
        ]);
    }
    let mut widths = [0usize; 8];
    for line in &table {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &table {
        let mut cells = Vec::new();
        for (i, cell) in line.iter().enumerate() {
            // KEYS and SIZE are numbers: right-aligned; DETAIL is last and
            // free text, so not padded.
            cells.push(match i {
                4 | 5 => format!("{cell:>w$}", w = widths[i]),
                7 => cell.clone(),
                _ => format!("{cell:<w$}", w = widths[i]),
            });
        }
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The report as one JSON object (one line).
pub fn render_json(repository: &str, rows: &[Row]) -> String {
    let row = |r: &Row| {
        let (reachable, error) = match &r.reach {
            Reach::Yes => ("true".to_owned(), "null".to_owned()),
            Reach::No(why) => ("false".to_owned(), json_str(why)),
            Reach::Unknown => ("null".to_owned(), "null".to_owned()),
            Reach::Nodes { up, .. } => ((*up > 0).to_string(), "null".to_owned()),
        };
        let free = r.free.map_or("null".to_owned(), |f| f.to_string());
        format!(
            "{{\"name\":{},\"kind\":\"{}\",\"uuid\":{},\"reachable\":{reachable},\"error\":{error},\"keys\":{},\"bytes\":{},\"free\":{free}",
            json_str(&r.name),
            r.kind.as_str(),
            json_str(&r.uuid),
            counted(r, r.keys.to_string()).replace('-', "null"),
            counted(r, r.bytes.to_string()).replace('-', "null"),
        )
    };
    let mut repo_row = String::new();
    let mut remotes = Vec::new();
    let mut clusters: Vec<String> = Vec::new();
    let mut nodes: Vec<String> = Vec::new();
    let flush = |clusters: &mut Vec<String>, nodes: &mut Vec<String>| {
        if let Some(c) = clusters.last_mut() {
            c.push_str(&format!(",\"nodes\":[{}]}}", nodes.join(",")));
        }
        nodes.clear();
    };
    for r in rows {
        match r.kind {
            Kind::Gateway => repo_row = format!("{}}}", row(r)),
            // A special remote under a cluster is one of its nodes.
            Kind::Proxied | Kind::Special if !r.member => remotes.push(format!("{}}}", row(r))),
            Kind::Cluster => {
                flush(&mut clusters, &mut nodes);
                let (up, of) = match r.reach {
                    Reach::Nodes { up, of } => (up, of),
                    _ => (0, 0),
                };
                clusters.push(format!(
                    "{},\"nodes_reachable\":{up},\"node_count\":{of}",
                    row(r)
                ));
            }
            Kind::Node | Kind::Via | Kind::Unreached | Kind::Proxied | Kind::Special => {
                let lacking: Vec<String> = r.lagging.iter().map(|n| json_str(n)).collect();
                nodes.push(format!(
                    "{},\"lacking_refs\":[{}]}}",
                    row(r),
                    lacking.join(",")
                ));
            }
        }
    }
    flush(&mut clusters, &mut nodes);
    format!(
        "{{\"repository\":{},\"here\":{repo_row},\"proxied\":[{}],\"clusters\":[{}]}}\n",
        json_str(repository),
        remotes.join(","),
        clusters.join(",")
    )
}

pub(super) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
