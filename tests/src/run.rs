//! Running a command and reporting it well when it does not do what a
//! scenario expected.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// What one finished command did.
#[derive(Debug, Clone)]
pub struct Out {
    /// The command line, for messages.
    pub cmdline: String,
    pub dir: PathBuf,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Exit code, or -1 when killed by a signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Panics unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Out {
        if !self.success() {
            panic!("command failed but should have succeeded:\n{self}");
        }
        self
    }

    /// Panics unless the command failed.
    #[track_caller]
    pub fn fails(self) -> Out {
        if self.success() {
            panic!("command succeeded but should have failed:\n{self}");
        }
        self
    }

    /// stdout and stderr together, for message checks that should not care
    /// which stream git-annex picked.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Panics unless stdout or stderr contains `needle`.
    #[track_caller]
    pub fn says(self, needle: &str) -> Out {
        if !self.all().contains(needle) {
            panic!("expected output to contain {needle:?}:\n{self}");
        }
        self
    }

    /// Panics if stdout or stderr contains `needle`.
    #[track_caller]
    pub fn never_says(self, needle: &str) -> Out {
        if self.all().contains(needle) {
            panic!("expected output not to contain {needle:?}:\n{self}");
        }
        self
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ (cd {} && {})", self.dir.display(), self.cmdline)?;
        writeln!(f, "status: {}", self.status)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// Human-readable command line of `cmd`.
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
            crate::standin::sh_quote(&a)
        } else {
            a.into_owned()
        }
    }));
    parts.join(" ")
}

/// Runs `cmd` to completion, capturing both streams. Panics only when the
/// program cannot be started at all.
#[track_caller]
pub fn run(mut cmd: Command, dir: &Path) -> Out {
    let cmdline = describe(&cmd);
    cmd.current_dir(dir);
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("could not start `{cmdline}` in {}: {e}", dir.display()),
    };
    Out {
        cmdline,
        dir: dir.to_path_buf(),
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
