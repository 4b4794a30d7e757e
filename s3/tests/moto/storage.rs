//! The storage contract against moto: stat, ranged reads, remove, staged
//! writes that are invisible until committed, resume after the parts the
//! bucket holds, and leave nothing when aborted.

use annex_s3::config::MIN_PART_SIZE;
use annex_s3::{ErrorKind, S3Storage};
use testkit::counting_proxy::CountingProxy;
use testkit::moto;

use crate::{bytes, new_storage, read_all, read_all_async};

const PART: usize = MIN_PART_SIZE as usize;

/// Writes `data` in 64 KiB writes, as a DATA body arrives.
async fn write_in_pieces(w: &mut annex_s3::StagedWrite, data: &[u8]) {
    for piece in data.chunks(64 << 10) {
        w.write(piece).await.expect("write");
    }
}

async fn put(s: &S3Storage, name: &str, data: &[u8]) {
    let mut w = s.begin_write(name, Some(data.len() as u64)).await.unwrap();
    assert_eq!(w.staged(), 0);
    write_in_pieces(&mut w, data).await;
    w.commit().await.unwrap();
}

#[tokio::test]
async fn stat_read_ranges_and_remove() {
    let (s, _) = new_storage(&[]);
    let name = "SHA256E-s1000--0123.bin";
    let data = bytes(1000, 1);
    assert_eq!(s.stat(name).await.unwrap(), None);
    let missing = s.read(name, 0).await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    put(&s, name, &data).await;
    assert_eq!(s.stat(name).await.unwrap(), Some(1000));
    assert_eq!(read_all(&s, name, 0).await, data);
    assert_eq!(read_all(&s, name, 1).await, &data[1..]);
    assert_eq!(read_all(&s, name, 999).await, &data[999..]);
    assert_eq!(read_all_async(&s, name, 10).await, &data[10..]);
    assert_eq!(read_all(&s, name, 1000).await, b"");
    let past = s.read(name, 1001).await.unwrap_err();
    assert!(matches!(past.kind, ErrorKind::Response(_)), "{past}");
    s.remove(name).await.unwrap();
    assert_eq!(s.stat(name).await.unwrap(), None);
    // Removing what is absent succeeds.
    s.remove(name).await.unwrap();
}

#[tokio::test]
async fn fileprefix_is_put_before_the_name() {
    let (s, bucket) = new_storage(&[("fileprefix", "annex/")]);
    put(&s, "KEY", b"abc").await;
    assert_eq!(moto::shared().list_objects(&bucket), ["annex/KEY"]);
    assert_eq!(read_all(&s, "KEY", 0).await, b"abc");
}

#[tokio::test]
async fn small_write_is_invisible_until_commit() {
    let (s, bucket) = new_storage(&[]);
    let data = bytes(3000, 2);
    let mut w = s.begin_write("K", Some(3000)).await.unwrap();
    write_in_pieces(&mut w, &data).await;
    assert_eq!(s.stat("K").await.unwrap(), None);
    assert!(moto::shared().list_objects(&bucket).is_empty());
    w.commit().await.unwrap();
    assert_eq!(read_all(&s, "K", 0).await, data);
}

/// An upload interrupted after two parts resumes at their end: the second
/// attempt sends only the rest (counted on the wire), and the object is
/// the whole.
#[tokio::test]
async fn interrupted_multipart_write_resumes_after_the_staged_parts() {
    let wire = CountingProxy::start(moto::shared().port());
    let port = wire.port().to_string();
    let (s, bucket) = new_storage(&[("partsize", "5MiB"), ("port", &port)]);
    let name = "SHA256E-s15730000--resume.bin";
    let data = bytes(3 * PART + 1234, 3);
    let size = data.len() as u64;

    let mut w = s.begin_write(name, Some(size)).await.unwrap();
    assert_eq!(w.staged(), 0);
    write_in_pieces(&mut w, &data[..2 * PART + PART / 2]).await;
    assert_eq!(s.stat(name).await.unwrap(), None, "visible before commit");
    // The client goes away mid-part: two whole parts are in the bucket.
    assert_eq!(w.pause().await.unwrap(), 2 * PART as u64);
    assert_eq!(moto::shared().list_uploads(&bucket), [name]);

    let before = wire.sent();
    let mut w = s.begin_write(name, Some(size)).await.unwrap();
    assert_eq!(w.staged(), 2 * PART as u64);
    write_in_pieces(&mut w, &data[2 * PART..]).await;
    assert_eq!(s.stat(name).await.unwrap(), None, "visible before commit");
    // Only what the bucket did not hold was sent again.
    let rest = size - 2 * PART as u64;
    assert_eq!(w.commit().await.unwrap(), rest);
    let resent = wire.sent() - before;
    assert!(
        (rest..rest + (64 << 10)).contains(&resent),
        "the resume sent {resent} bytes for the last {rest}"
    );

    assert_eq!(s.stat(name).await.unwrap(), Some(size));
    assert_eq!(read_all(&s, name, 0).await, data);
    assert_eq!(
        read_all_async(&s, name, 2 * PART as u64 + 7).await,
        &data[2 * PART + 7..]
    );
    assert!(moto::shared().list_uploads(&bucket).is_empty());
}

/// A caller without hash state for the staged bytes starts over.
#[tokio::test]
async fn restart_discards_the_staged_parts() {
    let (s, bucket) = new_storage(&[("partsize", "5MiB")]);
    let data = bytes(2 * PART + 10, 4);
    let size = data.len() as u64;
    let mut w = s.begin_write("R", Some(size)).await.unwrap();
    write_in_pieces(&mut w, &data[..PART + 1]).await;
    assert_eq!(w.pause().await.unwrap(), PART as u64);

    let mut w = s.begin_write("R", Some(size)).await.unwrap();
    assert_eq!(w.staged(), PART as u64);
    w.restart().await.unwrap();
    assert_eq!(w.staged(), 0);
    write_in_pieces(&mut w, &data).await;
    assert_eq!(w.commit().await.unwrap(), size);
    assert_eq!(read_all(&s, "R", 0).await, data);
    assert!(moto::shared().list_uploads(&bucket).is_empty());
}

/// An aborted write leaves no object and no upload to resume.
#[tokio::test]
async fn aborted_write_never_appears() {
    let (s, bucket) = new_storage(&[("partsize", "5MiB")]);
    let data = bytes(2 * PART + 10, 5);
    let mut w = s.begin_write("A", Some(data.len() as u64)).await.unwrap();
    write_in_pieces(&mut w, &data[..PART + PART / 2]).await;
    w.abort().await.unwrap();
    assert_eq!(s.stat("A").await.unwrap(), None);
    assert!(moto::shared().list_objects(&bucket).is_empty());
    assert!(moto::shared().list_uploads(&bucket).is_empty());
    let w = s.begin_write("A", Some(data.len() as u64)).await.unwrap();
    assert_eq!(w.staged(), 0);
}

#[tokio::test]
async fn wrong_sizes_are_refused() {
    let (s, _) = new_storage(&[]);
    let mut w = s.begin_write("Z", Some(3)).await.unwrap();
    let e = w.write(b"abcd").await.unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::SizeMismatch {
                expected: 3,
                got: 4
            }
        ),
        "{e}"
    );
    w.write(b"ab").await.unwrap();
    let e = w.commit().await.unwrap_err();
    assert!(
        matches!(
            e.kind,
            ErrorKind::SizeMismatch {
                expected: 3,
                got: 2
            }
        ),
        "{e}"
    );
    assert_eq!(s.stat("Z").await.unwrap(), None);
}

/// A key that does not say its size: small objects still go in one PUT,
/// large ones in parts, and an interrupted one resumes.
#[tokio::test]
async fn writes_of_unknown_size() {
    let (s, bucket) = new_storage(&[("partsize", "5MiB")]);
    let small = bytes(100, 6);
    let mut w = s.begin_write("U-small", None).await.unwrap();
    write_in_pieces(&mut w, &small).await;
    assert_eq!(w.commit().await.unwrap(), 100);
    assert_eq!(read_all(&s, "U-small", 0).await, small);

    let data = bytes(2 * PART + 99, 7);
    let mut w = s.begin_write("U-big", None).await.unwrap();
    write_in_pieces(&mut w, &data[..PART + 5]).await;
    assert_eq!(w.pause().await.unwrap(), PART as u64);
    let mut w = s.begin_write("U-big", None).await.unwrap();
    assert_eq!(w.staged(), PART as u64);
    write_in_pieces(&mut w, &data[PART..]).await;
    assert_eq!(w.commit().await.unwrap(), (PART + 99) as u64);
    assert_eq!(read_all(&s, "U-big", 0).await, data);
    assert!(moto::shared().list_uploads(&bucket).is_empty());
}

/// A bucket that does not answer is told apart from a missing object.
#[tokio::test]
async fn an_unreachable_bucket_is_named_so() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let params = crate::moto_params("nowhere", &[("port", &port)]);
    let config = annex_s3::S3Config::from_params(&params).unwrap();
    let s = S3Storage::new("gone", config, Some(crate::moto_creds())).unwrap();
    let e = s.stat("K").await.unwrap_err();
    assert!(e.is_unreachable(), "{e}");
    assert!(e.to_string().starts_with("S3 remote gone: stat K:"), "{e}");
}
