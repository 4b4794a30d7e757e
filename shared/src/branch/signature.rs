//! Who signs a git-annex branch commit, and when: as git would, read
//! without gix's zone database.

use std::fs;

/// Committer and author: git's configured identity, else the login name
/// at this host; dated now.
pub(super) fn signature(repo: &gix::Repository) -> gix::actor::Signature {
    let (name, email) = match identity(repo) {
        Some(configured) => configured,
        None => {
            let user = std::env::var("USER").unwrap_or_else(|_| "git-annex".into());
            let host = nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into());
            (user.clone().into(), format!("{user}@{host}").into())
        }
    };
    gix::actor::Signature {
        name,
        email,
        time: now_local(),
    }
}

/// The committer git would name: `GIT_COMMITTER_NAME` and `_EMAIL`, else
/// `committer.*`, else `user.*` (and `EMAIL` for the address), each part
/// on its own; `None` unless both are found. Read here rather than by
/// gix's `Repository::committer`, which also dates its answer through the
/// zone database (see [`now_local`]).
fn identity(repo: &gix::Repository) -> Option<(gix::bstr::BString, gix::bstr::BString)> {
    use std::os::unix::ffi::OsStringExt;
    let config = repo.config_snapshot();
    let from_env = |var: &str| std::env::var_os(var).map(|v| v.into_vec().into());
    let from_config = |keys: [&str; 2]| keys.iter().find_map(|k| config.string(*k));
    let name =
        from_env("GIT_COMMITTER_NAME").or_else(|| from_config(["committer.name", "user.name"]))?;
    let email = from_env("GIT_COMMITTER_EMAIL")
        .or_else(|| from_config(["committer.email", "user.email"]))
        .or_else(|| from_env("EMAIL"))?;
    Some((name, email))
}

/// Now, with this machine's offset from UTC, as git dates a commit.
/// gix's `Time::now_local_or_utc` names the zone through jiff's zone
/// database, which lists all of /usr/share/zoneinfo once per process (a
/// millisecond of every session that commits); the offset needs only the
/// zone's rules: those `TZ` names when it is set, else /etc/localtime's.
fn now_local() -> gix::date::Time {
    let now = jiff::Timestamp::now();
    let offset = local_zone().map_or(0, |z| z.to_offset(now).seconds());
    gix::date::Time {
        seconds: now.as_second(),
        offset,
    }
}

fn local_zone() -> Option<jiff::tz::TimeZone> {
    if std::env::var_os("TZ").is_some() {
        return jiff::tz::TimeZone::try_system().ok();
    }
    let rules = fs::read("/etc/localtime").ok()?;
    jiff::tz::TimeZone::tzif("localtime", &rules).ok()
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
