//! The driver against small shell programs that behave, crash, hang or
//! answer garbage.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::special::external::protocol::Direction;

const K: &str = "SHA256E-s5--abc.txt";

/// A program made of `body`, a shell `case` on the request word (`$1`
/// after `set -- $line`), after VERSION 1 and EXTENSIONS.
fn program(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\necho VERSION 1\nwhile read -r line; do\nset -- $line\ncase \"$1\" in\n\
         EXTENSIONS) echo EXTENSIONS INFO ;;\n{body}\n\
         *) echo UNSUPPORTED-REQUEST ;;\nesac\ndone\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn driver(dir: &Path, program: String, reply: Duration) -> Driver {
    let config = crate::special::config::Params::from([("greeting".to_owned(), "hi".to_owned())]);
    let host = Host::new("ext", "u-1", dir, config);
    let limits = Limits { reply, line: 1024 };
    Driver::new(program, dir, limits, Arc::new(host))
}

async fn checkpresent(d: &mut Driver) -> Result<bool, ExternalError> {
    d.request(Request::CheckPresent(K.into()), |r| match r {
        Reply::CheckPresentSuccess(_) => Some(Ok(true)),
        Reply::CheckPresentFailure(_) => Some(Ok(false)),
        Reply::CheckPresentUnknown(_, why) => Some(Err(why)),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_program_that_behaves() {
    let dir = tempfile::tempdir().unwrap();
    let p = program(
        dir.path(),
        "good",
        "PREPARE) echo GETCONFIG greeting; read -r v; [ \"$v\" = 'VALUE hi' ] && echo PREPARE-SUCCESS || echo PREPARE-FAILURE \"got $v\" ;;\n\
         CHECKPRESENT) echo INFO looking; echo CHECKPRESENT-SUCCESS \"$2\" ;;\n\
         TRANSFER) echo PROGRESS 1; echo TRANSFER-FAILURE \"$2\" \"$3\" no room here ;;",
    );
    let mut d = driver(dir.path(), p, Duration::from_secs(10));
    assert!(checkpresent(&mut d).await.unwrap());
    let store = Request::Transfer {
        direction: Direction::Store,
        key: K.into(),
        file: "f".into(),
    };
    let e = d
        .request(store, |r| match r {
            Reply::TransferFailure(_, _, why) => Some(Err::<(), _>(why)),
            _ => None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), format!("{}: no room here", d.program()));
    // A failure reply keeps the program: the next request needs no restart.
    assert!(d.running.is_some());
    assert!(checkpresent(&mut d).await.unwrap());
}

#[tokio::test]
async fn misbehaving_programs_fail_the_request_and_are_restarted() {
    let dir = tempfile::tempdir().unwrap();
    // Dies on its first CHECKPRESENT, answers the next run's.
    let flag = dir.path().join("crashed");
    let p = program(
        dir.path(),
        "crashy",
        &format!(
            "PREPARE) echo PREPARE-SUCCESS ;;\n\
             CHECKPRESENT) if [ -e {f} ]; then echo CHECKPRESENT-FAILURE \"$2\"; else touch {f}; echo 'boom' >&2; exit 3; fi ;;",
            f = flag.display()
        ),
    );
    let mut d = driver(dir.path(), p, Duration::from_secs(10));
    let e = checkpresent(&mut d).await.unwrap_err();
    assert!(matches!(e, ExternalError::Exited { .. }), "{e}");
    assert!(e.to_string().contains("boom"), "{e}");
    assert!(d.running.is_none());
    assert!(!checkpresent(&mut d).await.unwrap());

    let cases = [
        ("hangs", "PREPARE) echo PREPARE-SUCCESS ;;\nCHECKPRESENT) sleep 30 ;;", "within 1 s"),
        ("garbage", "PREPARE) echo PREPARE-SUCCESS ;;\nCHECKPRESENT) echo 'HELLO THERE' ;;", "HELLO THERE"),
        ("long", "PREPARE) echo PREPARE-SUCCESS ;;\nCHECKPRESENT) head -c 5000 /dev/zero | tr '\\0' x; echo ;;", "longer than 1024"),
        ("error", "PREPARE) echo PREPARE-SUCCESS ;;\nCHECKPRESENT) echo ERROR lost my marbles ;;", "lost my marbles"),
        ("wrongkey", "PREPARE) echo PREPARE-SUCCESS ;;\nCHECKPRESENT) echo TRANSFER-SUCCESS STORE \"$2\" ;;", "TRANSFER-SUCCESS"),
        ("noprepare", "PREPARE) echo PREPARE-FAILURE no store configured ;;", "no store configured"),
        ("version", "", "protocol version 3"),
    ];
    for (name, body, says) in cases {
        let mut p = program(dir.path(), name, body);
        if name == "version" {
            let text = std::fs::read_to_string(&p)
                .unwrap()
                .replace("VERSION 1", "VERSION 3");
            std::fs::write(&p, text).unwrap();
            p = dir.path().join(name).display().to_string();
        }
        let mut d = driver(dir.path(), p, Duration::from_secs(1));
        let e = checkpresent(&mut d).await.unwrap_err();
        assert!(e.to_string().contains(says), "{name}: {e}");
        assert!(d.running.is_none(), "{name}: the program is ended");
    }
}

/// git-annex speaks versions 1 and 2 (the same protocol; 2 for programs
/// that export), so a program that announces 2 is served.
#[tokio::test]
async fn a_program_of_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = program(
        dir.path(),
        "two",
        "PREPARE) echo PREPARE-SUCCESS ;;\nCHECKPRESENT) echo CHECKPRESENT-SUCCESS \"$2\" ;;",
    );
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replace("VERSION 1", "VERSION 2")).unwrap();
    let mut d = driver(dir.path(), p, Duration::from_secs(10));
    assert!(checkpresent(&mut d).await.unwrap());
}

#[tokio::test]
async fn a_program_not_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = driver(
        dir.path(),
        "git-annex-remote-not-there-at-all".into(),
        Duration::from_secs(1),
    );
    let e = checkpresent(&mut d).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot run git-annex-remote-not-there-at-all"),
        "{e}"
    );
}

#[tokio::test]
async fn async_programs_get_job_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("asyncy");
    std::fs::write(
        &path,
        "#!/bin/sh\necho VERSION 1\nread -r ext\necho EXTENSIONS ASYNC\n\
         read -r l; [ \"$l\" = 'J 1 PREPARE' ] || { echo \"ERROR got $l\"; exit 1; }\n\
         echo J 1 GETUUID; read -r u; [ \"$u\" = 'J 1 VALUE u-1' ] || { echo \"ERROR got $u\"; exit 1; }\n\
         echo J 1 PREPARE-SUCCESS\n\
         read -r l; set -- $l; echo J 1 CHECKPRESENT-SUCCESS $4\nread -r l\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut d = driver(
        dir.path(),
        path.display().to_string(),
        Duration::from_secs(10),
    );
    assert!(checkpresent(&mut d).await.unwrap());
}
