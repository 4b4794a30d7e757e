//! A throw-away certificate authority for HTTPS tests, made with the
//! `openssl` command: a root the client is told to trust, an
//! intermediate (served with `--chainfile`) and a leaf for 127.0.0.1 and
//! localhost signed by it, so the server must send the chain for the
//! client to verify it.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCa {
    /// The root, the only certificate the client trusts.
    pub root: PathBuf,
    /// The server's certificate and key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The intermediate that signed `cert`.
    pub chain: PathBuf,
}

impl TestCa {
    /// Makes every file under `dir`.
    pub fn new(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).expect("mkdir for the CA");
        let ca_ext = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
        let leaf_ext = "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n\
                        extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n";
        std::fs::write(dir.join("ca.ext"), ca_ext).expect("write ca.ext");
        std::fs::write(dir.join("leaf.ext"), leaf_ext).expect("write leaf.ext");
        let new_key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut root = vec!["req", "-x509", "-keyout", "root.key", "-out", "root.pem"];
        root.extend(new_key);
        root.extend(["-days", "2", "-subj", "/CN=annexproxy test root"]);
        root.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
        root.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(dir, &root);
        for (name, cn, signer, ext, serial) in [
            ("int", "annexproxy test intermediate", "root", "ca.ext", "2"),
            ("leaf", "127.0.0.1", "int", "leaf.ext", "3"),
        ] {
            let (key, csr, pem) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
            );
            let subj = format!("/CN={cn}");
            let mut req = vec!["req", "-keyout", &key, "-out", &csr, "-subj", &subj];
            req.extend(new_key);
            openssl(dir, &req);
            let (ca, ca_key) = (format!("{signer}.pem"), format!("{signer}.key"));
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca,
                    "-CAkey",
                    &ca_key,
                    "-set_serial",
                    serial,
                    "-days",
                    "2",
                    "-extfile",
                    ext,
                    "-out",
                    &pem,
                ],
            );
        }
        TestCa {
            root: dir.join("root.pem"),
            cert: dir.join("leaf.pem"),
            key: dir.join("leaf.key"),
            chain: dir.join("int.pem"),
        }
    }

    /// p2phttp's options to serve with this certificate.
    pub fn server_args(&self) -> Vec<String> {
        let s = |p: &Path| p.display().to_string();
        vec![
            "--certfile".into(),
            s(&self.cert),
            "--privatekeyfile".into(),
            s(&self.key),
            "--chainfile".into(),
            s(&self.chain),
        ]
    }
}

#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run openssl {args:?}: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
