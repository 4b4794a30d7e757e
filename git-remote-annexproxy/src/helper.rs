//! The gitremote-helpers(7) command loop, up to the moment git's smart
//! protocol takes over the pipes.
//!
//! stdout belongs to git: only protocol replies go there. Anything for a
//! human goes to stderr (from `main`, through the error).
//!
//! We advertise `connect` (git then runs upload-pack/receive-pack over us)
//! and `option` (so git tells us its verbosity and progress wishes and the
//! address family to use). Without `option` git would send no options at
//! all, which would also work; with it we must answer each one.

use std::io::{BufRead, Write};

use annex::p2p::Service;

/// Lines of the `capabilities` reply.
pub const CAPABILITIES: &[&str] = &["connect", "option"];

/// Which address family ssh should use (`option family`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    #[default]
    Any,
    Ipv4,
    Ipv6,
}

/// What git told us with `option` before connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// 0 quiet, 1 normal, more for each `-v`.
    pub verbosity: u32,
    pub progress: bool,
    pub family: Family,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            verbosity: 1,
            progress: false,
            family: Family::Any,
        }
    }
}

/// How the command loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// git ended the conversation (blank line or EOF) without connecting.
    Done,
    /// `connect` succeeded; the pipes now carry `service`'s protocol
    /// through `T`.
    Connected {
        service: Service,
        options: Options,
        tunnel: T,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum HelperError<E: std::error::Error + 'static> {
    #[error("talking to git failed")]
    Io(#[from] std::io::Error),
    #[error("gitremote-helpers protocol error at {line:?}")]
    UnknownCommand { line: String },
    #[error("service {service:?} is not available over annexproxy (only git-upload-pack and git-receive-pack)")]
    UnsupportedService { service: String },
    #[error(transparent)]
    Connect(E),
}

/// Answers git's commands from `input` on `output` until git connects or
/// ends the conversation.
///
/// On `connect`, `connect` is called to open the tunnel *before* git is told
/// the connection is up: a failure is then reported the way
/// gitremote-helpers(7) asks, by exiting with a message rather than leaving
/// git to find a dead pipe.
pub fn run<R, W, T, E, C>(
    input: &mut R,
    output: &mut W,
    connect: C,
) -> Result<Outcome<T>, HelperError<E>>
where
    R: BufRead,
    W: Write,
    E: std::error::Error + 'static,
    C: FnOnce(Service, &Options) -> Result<T, E>,
{
    let mut options = Options::default();
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(Outcome::Done);
        }
        let text = line.strip_suffix('\n').unwrap_or(&line);
        let tokens: Vec<&str> = text.split(' ').collect();
        match tokens.as_slice() {
            [""] => return Ok(Outcome::Done),
            ["capabilities"] => {
                for cap in CAPABILITIES {
                    writeln!(output, "{cap}")?;
                }
                writeln!(output)?;
            }
            ["option", name, value @ ..] => {
                let reply = set_option(&mut options, name, &value.join(" "));
                writeln!(output, "{reply}")?;
            }
            ["connect", service] => {
                let Some(svc) = Service::from_wire(service) else {
                    return Err(HelperError::UnsupportedService {
                        service: (*service).to_owned(),
                    });
                };
                let tunnel = connect(svc, &options).map_err(HelperError::Connect)?;
                writeln!(output)?;
                output.flush()?;
                return Ok(Outcome::Connected {
                    service: svc,
                    options,
                    tunnel,
                });
            }
            _ => {
                return Err(HelperError::UnknownCommand {
                    line: text.to_owned(),
                })
            }
        }
        output.flush()?;
    }
}

/// Applies one `option NAME VALUE`; returns the reply line.
fn set_option(options: &mut Options, name: &str, value: &str) -> String {
    match name {
        "verbosity" => match value.parse::<u32>() {
            Ok(n) => {
                options.verbosity = n;
                "ok".into()
            }
            Err(_) => format!("error invalid verbosity {value:?}"),
        },
        "progress" => match value {
            "true" => {
                options.progress = true;
                "ok".into()
            }
            "false" => {
                options.progress = false;
                "ok".into()
            }
            _ => format!("error invalid progress value {value:?}"),
        },
        "family" => {
            options.family = match value {
                "all" => Family::Any,
                "ipv4" => Family::Ipv4,
                "ipv6" => Family::Ipv6,
                _ => return format!("error invalid address family {value:?}"),
            };
            "ok".into()
        }
        // servpath (--upload-pack=…) cannot be honoured: the server decides
        // which git it runs. git warns and goes on.
        _ => "unsupported".into(),
    }
}

#[cfg(test)]
#[path = "helper_tests.rs"]
mod tests;
