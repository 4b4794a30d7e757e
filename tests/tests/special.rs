//! Special remotes behind our proxy (issue 13): the real client copies,
//! gets, fscks, drops and moves through the proxy to a `directory`
//! remote, unchunked and with `chunk=`; real git-annex inside the proxy's
//! repository reads what we stored, and we read what it stored.
//!
//! The proxy is served by our git-annex-shell alone; real git-annex is
//! used on the server only to set remotes up (`initremote`, as an
//! operator would) and as the oracle afterwards.
//!
//! - `special/world.rs`: the shared set-up;
//! - `flow`: the client's copy/get/fsck/drop/move, both directions of
//!   interoperation with real git-annex;
//! - `uploads`: corrupted and interrupted uploads, the reserve, GET at
//!   an offset;
//! - `refusals`: what we do not serve is named as such;
//! - `setup`: `annexproxy initremote`, `enableremote`, `verifyremote`
//!   against git-annex's records, and `status`;
//! - `p2p`: the remote at a P2P address (`serve-p2p --for d`);
//! - `versus`: real git-annex as the proxy against ours, in raw protocol;
//! - `cluster`: a directory remote as a node of a cluster beside a
//!   git-annex repository.
//! - `s3`: the same through our proxy to an S3 remote `d` (moto), chunked
//!   and not, the bucket checked object by object.
//! - `http`: the directory remote reached over `annexproxy p2phttp`.
//! - `direct`: content the client put into the remote itself, announced
//!   with DATA-PRESENT (a direct upload): checked, verified, recorded.
//! - `external`: external special remotes (rclone's, datalad's ora, a
//!   misbehaving program of ours); `external_async`: a program of ours
//!   taking ASYNC, shared by p2phttp's jobs.
//! - `crypto`: encrypted remotes (shared, hybrid, pubkey; directory and
//!   S3) through the proxy, both directions of interoperation;
//!   `sharedpubkey`: content only the holders of a secret key read;
//!   `gpg`: the tests' gpg keys.
//! - `export`: an `exporttree=yes annexobjects=yes` S3 remote: the
//!   export changed when the client pushes its tracking branch;
//!   `export_attacks`: crafted trees that must not escape or clobber.
//! - `s3_faults`: a bucket in trouble: transient failures retried,
//!   abandoned multipart uploads aborted, a missing bucket not reachable.

#[path = "special/world.rs"]
mod world;

#[path = "special/flow.rs"]
mod flow;

#[path = "special/uploads.rs"]
mod uploads;

#[path = "special/refusals.rs"]
mod refusals;

#[path = "special/setup.rs"]
mod setup;

#[path = "special/p2p.rs"]
mod p2p;

#[path = "special/versus.rs"]
mod versus;

#[path = "special/cluster.rs"]
mod cluster;
#[path = "special/direct.rs"]
mod direct;
#[path = "special/external.rs"]
mod external;
#[path = "special/external_async.rs"]
mod external_async;
#[path = "special/http.rs"]
mod http;
#[path = "special/s3.rs"]
mod s3;

#[path = "special/crypto.rs"]
mod crypto;
#[path = "special/export.rs"]
mod export;
#[path = "special/export_attacks.rs"]
mod export_attacks;
#[path = "special/gpg.rs"]
mod gpg;
#[path = "special/s3_faults.rs"]
mod s3_faults;
#[path = "special/sharedpubkey.rs"]
mod sharedpubkey;
