//! File-name globs of `include=` and `exclude=`.
//!
//! git-annex turns a glob into a POSIX regular expression (`*` any run of
//! characters including `/`, `?` one character, `[…]`/`[!…]` a class ending
//! at the glob's first `]`, `/` one or more slashes, everything else
//! literal) and hands that to a regex engine. Some globs only make sense
//! once the regex engine has read them — `[]a]` is a class of `]` and `a`,
//! `[abc` fails to compile — so we do the same two steps: write the regex
//! text, then read it with POSIX bracket rules. A glob whose regex does not
//! compile is kept, and is an error only when evaluation reaches it, as in
//! git-annex. Matching is a set-of-positions walk: linear in the name for
//! each pattern element, whatever the glob.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    source: String,
    compiled: Result<Vec<Piece>, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    Char(char),
    /// `.`: anything but a newline.
    Any,
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ClassItem {
    Range(char, char),
    Named(NamedClass),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NamedClass {
    Alpha,
    Digit,
    Alnum,
    Upper,
    Lower,
    Space,
    Blank,
    Punct,
    Print,
    Graph,
    Cntrl,
    Xdigit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    Once,
    Star,
    Plus,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Piece {
    atom: Atom,
    repeat: Repeat,
}

impl Glob {
    pub fn new(glob: &str) -> Glob {
        Glob {
            source: glob.to_owned(),
            compiled: compile(&to_regex(glob)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `name` matches; `Err` names the regex that
    /// git-annex too would fail to compile.
    pub fn matches(&self, name: &str) -> Result<bool, String> {
        let pieces = self.compiled.as_ref().map_err(Clone::clone)?;
        let chars: Vec<char> = name.chars().collect();
        let mut at = vec![false; chars.len() + 1];
        at[0] = true;
        for p in pieces {
            let mut next = vec![false; chars.len() + 1];
            if p.repeat == Repeat::Star {
                next.clone_from(&at);
            }
            for i in 0..chars.len() {
                // For repeats, `next[i]` may have been set in this same pass,
                // which chains the repetition left to right.
                let from = at[i] || (p.repeat != Repeat::Once && next[i]);
                if from && p.atom.matches(chars[i]) {
                    next[i + 1] = true;
                }
            }
            at = next;
        }
        Ok(at[chars.len()])
    }
}

fn to_regex(glob: &str) -> String {
    let mut out = String::new();
    let mut cs = glob.chars().peekable();
    while let Some(c) = cs.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                out.push('[');
                if cs.peek() == Some(&'!') {
                    cs.next();
                    out.push('^');
                }
                for c in cs.by_ref() {
                    match c {
                        ']' => {
                            out.push(']');
                            break;
                        }
                        '\\' => out.push_str("\\\\"),
                        c => out.push(c),
                    }
                }
            }
            '/' => out.push_str("[/]+"),
            '\\' => out.push_str("[\\]+"),
            c if c.is_alphanumeric() => out.push(c),
            c => {
                out.push('\\');
                out.push(c);
            }
        }
    }
    out
}

fn compile(regex: &str) -> Result<Vec<Piece>, String> {
    let fail = || Err(format!("failed to compile regex: ^{regex}$"));
    let cs: Vec<char> = regex.chars().collect();
    let mut pieces: Vec<Piece> = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let atom = match cs[i] {
            '\\' => {
                i += 1;
                match cs.get(i) {
                    Some(c) => Atom::Char(*c),
                    None => return fail(),
                }
            }
            '.' => Atom::Any,
            '[' => match bracket(&cs, &mut i) {
                Some(a) => a,
                None => return fail(),
            },
            '*' | '+' => {
                let repeat = if cs[i] == '*' {
                    Repeat::Star
                } else {
                    Repeat::Plus
                };
                match pieces.last_mut() {
                    Some(p) if p.repeat == Repeat::Once => p.repeat = repeat,
                    _ => return fail(),
                }
                i += 1;
                continue;
            }
            c => Atom::Char(c),
        };
        pieces.push(Piece {
            atom,
            repeat: Repeat::Once,
        });
        i += 1;
    }
    Ok(pieces)
}

/// Read a POSIX bracket starting at `cs[*i] == '['`; leaves `*i` on its `]`.
fn bracket(cs: &[char], i: &mut usize) -> Option<Atom> {
    *i += 1;
    let negated = cs.get(*i) == Some(&'^');
    if negated {
        *i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let c = *cs.get(*i)?;
        if c == ']' && !first {
            break;
        }
        first = false;
        if c == '[' && cs.get(*i + 1) == Some(&':') {
            let start = *i + 2;
            let len = cs[start..].windows(2).position(|w| w == [':', ']'])?;
            let name: String = cs[start..start + len].iter().collect();
            items.push(ClassItem::Named(named_class(&name)?));
            *i = start + len + 2;
            continue;
        }
        if cs.get(*i + 1) == Some(&'-') && cs.get(*i + 2).is_some_and(|e| *e != ']') {
            let end = cs[*i + 2];
            if end < c {
                return None;
            }
            items.push(ClassItem::Range(c, end));
            *i += 3;
        } else {
            items.push(ClassItem::Range(c, c));
            *i += 1;
        }
    }
    Some(Atom::Class { negated, items })
}

fn named_class(name: &str) -> Option<NamedClass> {
    Some(match name {
        "alpha" => NamedClass::Alpha,
        "digit" => NamedClass::Digit,
        "alnum" => NamedClass::Alnum,
        "upper" => NamedClass::Upper,
        "lower" => NamedClass::Lower,
        "space" => NamedClass::Space,
        "blank" => NamedClass::Blank,
        "punct" => NamedClass::Punct,
        "print" => NamedClass::Print,
        "graph" => NamedClass::Graph,
        "cntrl" => NamedClass::Cntrl,
        "xdigit" => NamedClass::Xdigit,
        _ => return None,
    })
}

impl NamedClass {
    fn contains(self, c: char) -> bool {
        match self {
            NamedClass::Alpha => c.is_alphabetic(),
            NamedClass::Digit => c.is_ascii_digit(),
            NamedClass::Alnum => c.is_alphanumeric(),
            NamedClass::Upper => c.is_uppercase(),
            NamedClass::Lower => c.is_lowercase(),
            NamedClass::Space => c.is_whitespace(),
            NamedClass::Blank => c == ' ' || c == '\t',
            NamedClass::Punct => c.is_ascii_punctuation(),
            NamedClass::Print => !c.is_control(),
            NamedClass::Graph => !c.is_control() && !c.is_whitespace(),
            NamedClass::Cntrl => c.is_control(),
            NamedClass::Xdigit => c.is_ascii_hexdigit(),
        }
    }
}

impl Atom {
    fn matches(&self, c: char) -> bool {
        match self {
            Atom::Char(x) => *x == c,
            Atom::Any => c != '\n',
            Atom::Class { negated, items } => {
                let hit = items.iter().any(|it| match it {
                    ClassItem::Range(a, b) => (*a..=*b).contains(&c),
                    ClassItem::Named(n) => n.contains(c),
                });
                if *negated {
                    !hit && c != '\n'
                } else {
                    hit
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, name: &str) -> Result<bool, String> {
        Glob::new(glob).matches(name)
    }

    #[test]
    fn globs_as_git_annex_reads_them() {
        assert_eq!(m("*", "a/b/c"), Ok(true));
        assert_eq!(m("*.mp3", "music/x.mp3"), Ok(true));
        assert_eq!(m("*.mp3", "x.mp3.txt"), Ok(false));
        assert_eq!(m("archive/*", "archive/x"), Ok(true));
        assert_eq!(m("*/archive/*", "archive/x"), Ok(false));
        assert_eq!(m("a/b", "a//b"), Ok(true));
        assert_eq!(m("?", "ab"), Ok(false));
        assert_eq!(m("[ab]x", "bx"), Ok(true));
        assert_eq!(m("[!ab]x", "bx"), Ok(false));
        assert_eq!(m("[!ab]x", "cx"), Ok(true));
        assert_eq!(m("[a-c]", "b"), Ok(true));
        assert_eq!(m("[]a]", "a"), Ok(true));
        assert_eq!(m("[]a]", "]"), Ok(true));
        assert_eq!(m("[[:digit:]]x", "7x"), Ok(true));
        assert_eq!(m("a.b", "axb"), Ok(false));
        assert_eq!(m("", ""), Ok(true));
        assert!(m("[abc", "a").is_err());
        assert!(m("[z-a]", "a").is_err());
    }

    #[test]
    fn many_stars_stay_linear() {
        let g = "*a".repeat(40);
        let name = "a".repeat(39);
        assert_eq!(m(&g, &name), Ok(false));
        assert_eq!(m(&g, &"a".repeat(4000)), Ok(true));
    }
}
