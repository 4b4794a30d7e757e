//! Our side of the program's queries: what git-annex answers to
//! GETCONFIG, GETCREDS, DIRHASH, GETUUID, … (`Remote/External.hs:
//! handleRemoteRequest`), answered from the remote's records in this
//! repository.
//!
//! - GETCONFIG: the remote's parameters as remote.log records them, plus
//!   what the program set with SETCONFIG; SETCONFIG changes are kept as
//!   [`Host::changes`], which `initremote`/`enableremote` write to
//!   remote.log (at other times they last as long as the program runs,
//!   as in git-annex);
//! - SETCREDS/GETCREDS: `annex/creds/<uuid>-<setting>` (two lines, owner
//!   only), and with `embedcreds=yes` the pair base64-encoded in the
//!   remote's config under the setting's name, as git-annex stores an
//!   unencrypted remote's credentials; GETCREDS reads the environment
//!   (`<uuid>-<setting>login`, `…password`) first, as git-annex does;
//! - SETSTATE/GETSTATE: the remote state log (`<key>.log.rmt`), and
//!   SETWANTED/GETWANTED: `preferred-content.log`, in this repository's
//!   git-annex branch, as git-annex keeps them (written to the journal,
//!   committed with the session's logs);
//! - SETURLPRESENT/SETURLMISSING (and the URI forms): the key's web log
//!   (`<key>.log.web`), and the web remote in its location log, as
//!   git-annex records them; GETURLS lists what the web log holds.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use annex::branch::location::{location_log_path_for, LogStatus};
use annex::branch::maplog::MapLog;
use annex::branch::uuidlog::{change_uuid_log, UuidLog};
use annex::branch::{Branch, BranchError, VectorClock};
use annex::key::Key;
use base64::Engine as _;

/// Where git-annex keeps preferred content expressions.
const PREFERRED_CONTENT_LOG: &str = "preferred-content.log";

use super::protocol::{Answer, Query};
use crate::special::config::Params;

/// The remote as the program sees it: one for all the processes and jobs
/// of a remote's program, as git-annex shares one config among them.
#[derive(Debug)]
pub struct Host {
    /// The git remote's name (GETGITREMOTENAME).
    pub remote: String,
    pub uuid: String,
    pub git_dir: PathBuf,
    config: Mutex<Config>,
}

#[derive(Debug, Default)]
struct Config {
    /// GETCONFIG's answers.
    current: Params,
    /// What SETCONFIG and SETCREDS changed in `current`.
    changes: Params,
}

impl Host {
    pub fn new(remote: &str, uuid: &str, git_dir: &Path, config: Params) -> Host {
        Host {
            remote: remote.to_owned(),
            uuid: uuid.to_owned(),
            git_dir: git_dir.to_owned(),
            config: Mutex::new(Config {
                current: config,
                changes: Params::new(),
            }),
        }
    }

    fn config(&self) -> MutexGuard<'_, Config> {
        // A panic while the lock was held left whole values behind.
        self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What SETCONFIG and SETCREDS changed.
    pub fn changes(&self) -> Params {
        self.config().changes.clone()
    }

    fn get(&self, k: &str) -> Option<String> {
        self.config().current.get(k).cloned()
    }

    /// The answer to `query`, or `None` where none is sent (PROGRESS,
    /// DEBUG, INFO, SETCONFIG, SETCREDS, the URL notices).
    pub fn answer(&self, query: &Query) -> Option<Answer> {
        let value = |v: String| Some(Answer::Value(v));
        match query {
            Query::GetConfig(k) => value(self.get(k).unwrap_or_default()),
            Query::SetConfig(k, v) => {
                self.set(k, v);
                None
            }
            Query::DirHash(k) => value(dirhash(k, Key::hash_dir_mixed)),
            Query::DirHashLower(k) => value(dirhash(k, Key::hash_dir_lower)),
            Query::GetUuid => value(self.uuid.clone()),
            Query::GetGitDir => value(self.git_dir.display().to_string()),
            Query::GetGitRemoteName => value(self.remote.clone()),
            Query::GetCreds(setting) => Some(match self.creds(setting) {
                Some((login, password)) => Answer::Creds { login, password },
                None => Answer::Creds {
                    login: String::new(),
                    password: String::new(),
                },
            }),
            Query::SetCreds {
                setting,
                login,
                password,
            } => match self.set_creds(setting, login, password) {
                Ok(()) => None,
                Err(e) => Some(Answer::Error(format!("SETCREDS {setting}: {e}"))),
            },
            Query::GetWanted => self.read_log(PREFERRED_CONTENT_LOG, |text| {
                UuidLog::parse(text).get(&self.uuid).cloned()
            }),
            Query::SetWanted(expr) => self.change_log(PREFERRED_CONTENT_LOG.into(), |old| {
                change_uuid_log(old, &self.uuid, expr, VectorClock::candidate_now())
            }),
            Query::GetState(k) => match state_log_path(k) {
                Some(path) => {
                    self.read_log(&path, |text| MapLog::parse(text).get(&self.uuid).cloned())
                }
                None => Some(Answer::Error(format!("GETSTATE: not a key: {k}"))),
            },
            Query::SetState(k, v) => match state_log_path(k) {
                Some(path) => self.change_log(path, |old| {
                    let mut log = MapLog::parse(old);
                    log.set(&self.uuid, v.clone(), VectorClock::candidate_now());
                    log.format()
                }),
                None => Some(Answer::Error(format!("SETSTATE: not a key: {k}"))),
            },
            Query::GetUrls(k, prefix) => self.get_urls(k, prefix),
            Query::SetUrlPresent(k, u) => self.set_url(k, u, LogStatus::Present),
            Query::SetUrlMissing(k, u) => self.set_url(k, u, LogStatus::Missing),
            // A URI is logged as git-annex logs it: for another downloader
            // than the web's.
            Query::SetUriPresent(k, u) => self.set_url(k, &format!(":{u}"), LogStatus::Present),
            Query::SetUriMissing(k, u) => self.set_url(k, &format!(":{u}"), LogStatus::Missing),
            Query::Debug(m) => {
                tracing::debug!(remote = %self.remote, "{m}");
                None
            }
            Query::Info(m) => {
                tracing::info!(remote = %self.remote, "{m}");
                None
            }
            Query::Progress(_) => None,
        }
    }

    /// `VALUE` with what `f` finds in the git-annex branch's file `path`
    /// (journal first), empty when nothing.
    fn read_log(&self, path: &str, f: impl FnOnce(&[u8]) -> Option<String>) -> Option<Answer> {
        let found = Branch::open(&self.git_dir).and_then(|b| b.read_file(path));
        Some(match found {
            Ok(text) => Answer::Value(text.as_deref().and_then(f).unwrap_or_default()),
            Err(e) => Answer::Error(format!("reading {path}: {e}")),
        })
    }

    /// Change the git-annex branch's file `path` in the journal (it is
    /// committed with the session's logs); no answer, or ERROR.
    fn change_log(&self, path: String, f: impl FnOnce(&[u8]) -> Vec<u8>) -> Option<Answer> {
        let changed = Branch::open(&self.git_dir)
            .and_then(|b| b.change_file(&path, |old| f(old.unwrap_or_default())));
        match changed {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(remote = %self.remote, "writing {path}: {e}");
                Some(Answer::Error(format!("writing {path}: {e}")))
            }
        }
    }

    /// GETURLS: the URLs logged for `key` that start with `prefix`, as
    /// their downloader takes them.
    fn get_urls(&self, key: &str, prefix: &str) -> Option<Answer> {
        let Ok(k) = Key::parse(key) else {
            return Some(Answer::Error(format!("GETURLS: not a key: {key}")));
        };
        Some(match self.logged_urls(&k) {
            Ok((_, urls)) => Answer::Values(
                urls.iter()
                    .map(|u| downloaded(u).0.to_owned())
                    .filter(|u| u.starts_with(prefix))
                    .collect(),
            ),
            Err(e) => Answer::Error(format!("GETURLS: {e}")),
        })
    }

    /// The branch, and the URLs its web log says download `key`.
    fn logged_urls(&self, key: &Key) -> Result<(Branch, Vec<String>), BranchError> {
        let branch = Branch::open(&self.git_dir)?;
        let log = branch.location_log(&url_log_path(key))?;
        let urls = log.present().into_iter().map(str::to_owned).collect();
        Ok((branch, urls))
    }

    /// SETURLPRESENT/SETURLMISSING as git-annex records them: the URL in
    /// the key's web log (once), and the web remote in its location log
    /// while a URL the web downloads is logged.
    fn set_url(&self, key: &str, url: &str, status: LogStatus) -> Option<Answer> {
        let Ok(k) = Key::parse(key) else {
            return Some(Answer::Error(format!("not a key: {key}")));
        };
        let logged = self.logged_urls(&k).and_then(|(branch, urls)| {
            let known = urls.iter().any(|u| u == url);
            let web = !downloaded(url).1;
            match status {
                LogStatus::Present => {
                    if !known {
                        branch.log_location(&url_log_path(&k), url, status)?;
                    }
                    if web {
                        branch.log_key_location(&k, WEB_UUID, status)?;
                    }
                }
                _ if known => {
                    branch.log_location(&url_log_path(&k), url, status)?;
                    let others = urls.iter().any(|u| u != url && !downloaded(u).1);
                    if web && !others {
                        branch.log_key_location(&k, WEB_UUID, status)?;
                    }
                }
                _ => {}
            }
            Ok(())
        });
        match logged {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(remote = %self.remote, "logging {url} for {key}: {e}");
                Some(Answer::Error(format!("logging {url} for {key}: {e}")))
            }
        }
    }

    fn set(&self, k: &str, v: &str) {
        let mut config = self.config();
        config.current.insert(k.to_owned(), v.to_owned());
        config.changes.insert(k.to_owned(), v.to_owned());
    }

    /// `annex/creds/<uuid>-<setting>`, `/` made `_` (`credstorage`).
    fn creds_name(&self, setting: &str) -> String {
        format!("{}-{setting}", self.uuid).replace('/', "_")
    }

    /// The pair as git-annex finds it: in the environment
    /// (`<uuid>-<setting>login` and `…password`, both set), the cache
    /// file, or the remote's config.
    fn creds(&self, setting: &str) -> Option<(String, String)> {
        let base = self.creds_name(setting);
        let env = |part: &str| std::env::var(format!("{base}{part}")).ok();
        if let (Some(login), Some(password)) = (env("login"), env("password")) {
            return Some((login, password));
        }
        let path = annex_s3::creds::creds_file(&self.git_dir, &base);
        if let Ok(text) = std::fs::read_to_string(path) {
            return decode_pair(&text);
        }
        if self.get("cipher").is_some() {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.get(setting)?.trim())
            .ok()?;
        decode_pair(&String::from_utf8_lossy(&bytes))
    }

    fn set_creds(
        &self,
        setting: &str,
        login: &str,
        password: &str,
    ) -> Result<(), annex_s3::CredsError> {
        let name = self.creds_name(setting);
        annex_s3::creds::write_creds_file(&self.git_dir, &name, login, password)?;
        // git-annex encrypts the pair it embeds in an encrypted remote's
        // config with the cipher; we do not, so such a pair stays in the
        // cache file rather than in remote.log in the clear.
        if self.get("cipher").is_some() {
            tracing::warn!(remote = %self.remote, "not embedding {setting}: the remote is encrypted");
        } else if self.get("embedcreds").as_deref() == Some("yes") {
            let embedded = annex_s3::creds::encode_embedded(login, password);
            self.set(setting, &embedded);
        }
        Ok(())
    }
}

/// git-annex's web remote: a key with a web URL logged is in it.
const WEB_UUID: &str = "00000000-0000-0000-0000-000000000001";

/// git-annex's web log of `key`: `<hashdir>/<key>.log.web`.
fn url_log_path(key: &Key) -> String {
    format!("{}.web", location_log_path_for(key))
}

/// A logged URL as its downloader takes it, and whether that is another
/// than the web's (`getDownloader`: `:` for a URI, `yt:` for youtube-dl,
/// which is the web's too).
fn downloaded(logged: &str) -> (&str, bool) {
    match logged.split_once(':') {
        Some(("", uri)) => (uri, true),
        Some(("yt" | "quvi", url)) => (url, false),
        _ => (logged, false),
    }
}

/// git-annex's remote state log of `key`: `<hashdir>/<key>.log.rmt`.
fn state_log_path(key: &str) -> Option<String> {
    Key::parse(key)
        .ok()
        .map(|k| format!("{}.rmt", location_log_path_for(&k)))
}

/// A key's hash directories with the trailing `/` git-annex sends (a
/// program appends the key's name to it); a key we cannot parse gets
/// the hash of its text as a key would have it.
fn dirhash(key: &str, f: fn(&Key) -> String) -> String {
    match Key::parse(key) {
        Ok(k) => format!("{}/", f(&k)),
        Err(_) => String::new(),
    }
}

/// git-annex's `decodeCredPair`: two lines.
fn decode_pair(text: &str) -> Option<(String, String)> {
    let mut lines = text.lines();
    let login = lines.next()?.to_owned();
    let password = lines.next()?.to_owned();
    lines.next().is_none().then_some((login, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(dir: &Path) -> Host {
        let config = Params::from([("url".to_owned(), "ria+file:///s".to_owned())]);
        Host::new("ora", "u-1", dir, config)
    }

    #[test]
    fn config_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path());
        let v = |h: &Host, q| h.answer(&q).map(|a| a.line());
        assert_eq!(
            v(&h, Query::GetConfig("url".into())).unwrap(),
            "VALUE ria+file:///s"
        );
        assert_eq!(v(&h, Query::GetConfig("nope".into())).unwrap(), "VALUE ");
        assert_eq!(v(&h, Query::SetConfig("prefix".into(), "p".into())), None);
        assert_eq!(v(&h, Query::GetConfig("prefix".into())).unwrap(), "VALUE p");
        assert_eq!(h.changes().get("prefix").unwrap(), "p");
        assert_eq!(v(&h, Query::GetUuid).unwrap(), "VALUE u-1");
        assert_eq!(v(&h, Query::GetGitRemoteName).unwrap(), "VALUE ora");
        // git-annex's hash directories, with the trailing slash.
        let key = "SHA256E-s0--e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let k = Key::parse(key).unwrap();
        assert_eq!(
            v(&h, Query::DirHashLower(key.into())).unwrap(),
            format!("VALUE {}/", k.hash_dir_lower())
        );
    }

    /// SETSTATE and SETWANTED reach the git-annex branch's logs as
    /// git-annex writes them, and GETSTATE and GETWANTED read them back.
    #[test]
    fn state_and_wanted_in_the_branch() {
        let root = tempfile::tempdir().unwrap();
        let (git_dir, _) = crate::testutil::new_repo(root.path(), "r.git", "r");
        let h = Host::new("ext", "u-1", &git_dir, Params::new());
        let key =
            "SHA256E-s5--2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.txt";
        let v = |q| h.answer(&q).map(|a| a.line());
        assert_eq!(v(Query::GetState(key.into())).unwrap(), "VALUE ");
        assert_eq!(v(Query::SetState(key.into(), "id 42 x".into())), None);
        assert_eq!(v(Query::GetState(key.into())).unwrap(), "VALUE id 42 x");
        let k = Key::parse(key).unwrap();
        let path = format!("{}/{key}.log.rmt", k.hash_dir_lower());
        let branch = Branch::open(&git_dir).unwrap();
        let text = String::from_utf8(branch.read_file(&path).unwrap().unwrap()).unwrap();
        let (clock, rest) = text.split_once(' ').unwrap();
        assert!(clock.ends_with('s'), "{text}");
        assert_eq!(rest, "u-1 id 42 x\n");
        assert!(matches!(
            h.answer(&Query::GetState("not a key".into())),
            Some(Answer::Error(_))
        ));

        assert_eq!(v(Query::GetWanted).unwrap(), "VALUE ");
        assert_eq!(v(Query::SetWanted("include=*.bin".into())), None);
        assert_eq!(v(Query::GetWanted).unwrap(), "VALUE include=*.bin");
        let log = branch.read_file("preferred-content.log").unwrap().unwrap();
        let log = String::from_utf8(log).unwrap();
        assert!(log.starts_with("u-1 include=*.bin timestamp="), "{log}");
    }

    /// The URL notices reach the key's web log, and the web remote's
    /// place in its location log, as git-annex records them; GETURLS
    /// lists them as their downloader takes them.
    #[test]
    fn urls_in_the_web_log() {
        let root = tempfile::tempdir().unwrap();
        let (git_dir, _) = crate::testutil::new_repo(root.path(), "r.git", "r");
        let h = Host::new("ext", "u-1", &git_dir, Params::new());
        let key =
            "SHA256E-s5--2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824.txt";
        let k = Key::parse(key).unwrap();
        let branch = Branch::open(&git_dir).unwrap();
        let web = || {
            branch
                .key_locations(&k)
                .unwrap()
                .contains(&WEB_UUID.to_owned())
        };
        let urls = |prefix: &str| {
            h.answer(&Query::GetUrls(key.into(), prefix.into()))
                .unwrap()
                .line()
        };
        assert_eq!(urls(""), "VALUE ");
        let (a, b) = ("http://a.example/1", "https://b.example/2");
        for u in [a, b, a] {
            assert_eq!(h.answer(&Query::SetUrlPresent(key.into(), u.into())), None);
        }
        assert_eq!(
            h.answer(&Query::SetUriPresent(key.into(), "s3://x/y".into())),
            None
        );
        assert!(web());
        let log = branch
            .read_file(&format!("{}/{key}.log.web", k.hash_dir_lower()))
            .unwrap();
        let log = String::from_utf8(log.unwrap()).unwrap();
        assert_eq!(log.lines().count(), 3, "{log}");
        assert!(
            log.lines().all(|l| l.split(' ').nth(1) == Some("1")),
            "{log}"
        );
        assert!(log.contains(" 1 :s3://x/y"), "{log}");
        assert_eq!(urls("http"), format!("VALUE {a}\nVALUE {b}\nVALUE "));
        assert_eq!(urls("s3:"), "VALUE s3://x/y\nVALUE ");
        // The web keeps the key while a web URL is left.
        h.answer(&Query::SetUrlMissing(key.into(), a.into()));
        assert!(web());
        h.answer(&Query::SetUrlMissing(key.into(), b.into()));
        assert!(!web());
        assert_eq!(urls(""), "VALUE s3://x/y\nVALUE ");
    }

    #[test]
    fn creds_cached_and_embedded() {
        let dir = tempfile::tempdir().unwrap();
        let h = host(dir.path());
        let get = |h: &Host| h.answer(&Query::GetCreds("c/x".into())).unwrap().line();
        assert_eq!(get(&h), "CREDS  ");
        let set = Query::SetCreds {
            setting: "c/x".into(),
            login: "me".into(),
            password: "pw".into(),
        };
        assert_eq!(h.answer(&set), None);
        assert!(dir.path().join("annex/creds/u-1-c_x").is_file());
        assert_eq!(get(&h), "CREDS me pw");
        assert!(h.changes().is_empty());
        // Embedded: in the config, readable without the cache file.
        h.set("embedcreds", "yes");
        h.answer(&set);
        std::fs::remove_file(dir.path().join("annex/creds/u-1-c_x")).unwrap();
        assert!(h.changes().contains_key("c/x"));
        assert_eq!(get(&h), "CREDS me pw");
        // The environment comes first, as in git-annex.
        std::env::set_var("u-1-c_xlogin", "envme");
        std::env::set_var("u-1-c_xpassword", "env pw");
        assert_eq!(get(&h), "CREDS envme env pw");
        std::env::remove_var("u-1-c_xpassword");
        assert_eq!(get(&h), "CREDS me pw", "both or neither");
        // Never embedded in the clear in an encrypted remote's config.
        let h = host(dir.path());
        h.set("embedcreds", "yes");
        h.set("cipher", "c2VjcmV0");
        let set = Query::SetCreds {
            setting: "c/y".into(),
            login: "me".into(),
            password: "pw".into(),
        };
        assert_eq!(h.answer(&set), None);
        assert!(!h.changes().contains_key("c/y"));
        assert!(dir.path().join("annex/creds/u-1-c_y").is_file());
    }
}
