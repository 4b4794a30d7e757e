//! Putting the objects of one branch commit on disk: loose when they are
//! few, else as one pack.
//!
//! A commit of N location-log changes makes about 3N objects (each log's
//! blob and its two hash-directory trees). Loose, that is 3N new files, and
//! creating a file is the costliest thing the server does per key: it
//! allocates an inode, which on ext4 also walks past every inode deleted in
//! the last seconds (the journal and lock files of the same session). A
//! pack and its index are two files whatever N, so a commit of many keys
//! writes them as one pack (undeltified, as `git` writes a pack of loose
//! objects; `git gc` repacks it with everything else).
//!
//! Durability is that of the loose objects it replaces: neither is synced,
//! as `git` does not sync loose objects by default either. The pack is in
//! place, index last, before the branch ref moves to the commit in it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use gix::objs::Kind;
use gix::zlib::stream::deflate::{Compress, FlushCompress};
use gix::zlib::Status;
use gix::ObjectId;
use sha1::{Digest, Sha1};

use super::{io_err, BranchError};

/// From this many objects on, a commit writes a pack instead of loose
/// objects (a commit of one key makes 4 objects; of 5 keys about 16).
pub(crate) const PACK_FROM: usize = 16;

/// Writes every object `repo` kept in memory since
/// [`gix::Repository::with_object_memory`], then writes through again.
pub(crate) fn persist(repo: &mut gix::Repository) -> Result<(), BranchError> {
    let Some(mut objects) = repo.objects.take_object_memory() else {
        return Ok(());
    };
    let mut objects: Vec<(ObjectId, Kind, Vec<u8>)> = objects
        .drain()
        .map(|(id, (kind, data))| (id, kind, data))
        .collect();
    if objects.len() >= PACK_FROM && repo.object_hash() == gix::hash::Kind::Sha1 {
        objects.sort_by_key(|o| o.0);
        let dir = repo.objects.store_ref().path().join("pack");
        write_pack(&dir, &objects).map_err(io_err("writing the git-annex branch's pack"))?;
        collect_if_many(repo, &dir);
        return Ok(());
    }
    for (_, kind, data) in &objects {
        gix::objs::Write::write_buf(&repo.objects, *kind, data).map_err(|e| BranchError::Io {
            context: "writing a git-annex branch object".into(),
            source: io::Error::other(e.to_string()),
        })?;
    }
    Ok(())
}

/// The type number of a pack entry.
fn type_code(kind: Kind) -> u8 {
    match kind {
        Kind::Commit => 1,
        Kind::Tree => 2,
        Kind::Blob => 3,
        Kind::Tag => 4,
    }
}

/// A pack entry's header: type and size, 4 bits then 7 bits a byte.
fn entry_header(kind: Kind, size: usize, out: &mut Vec<u8>) {
    let mut size = size as u64;
    let mut byte = (type_code(kind) << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size > 0 {
        out.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    out.push(byte);
}

/// Appends `data` to `out` as one zlib stream.
fn deflate(z: &mut Compress, mut data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    z.reset();
    let mut buf = [0u8; 8192];
    loop {
        let (read, wrote) = (z.total_in(), z.total_out());
        let status = z
            .compress(data, &mut buf, FlushCompress::Finish)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let consumed = usize::try_from(z.total_in() - read).map_err(io::Error::other)?;
        let produced = usize::try_from(z.total_out() - wrote).map_err(io::Error::other)?;
        out.extend_from_slice(&buf[..produced]);
        data = &data[consumed..];
        if matches!(status, Status::StreamEnd) {
            return Ok(());
        }
        if consumed == 0 && produced == 0 {
            return Err(io::Error::other("zlib made no progress"));
        }
    }
}

/// The pack (version 2) and its index (version 2) of `objects`, sorted by
/// id. The pack ends in its checksum, which names both files.
pub(crate) fn encode(objects: &[(ObjectId, Kind, Vec<u8>)]) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let count = u32::try_from(objects.len()).map_err(io::Error::other)?;
    let mut pack = Vec::with_capacity(64 + objects.iter().map(|o| o.2.len()).sum::<usize>());
    pack.extend_from_slice(b"PACK");
    pack.extend_from_slice(&2u32.to_be_bytes());
    pack.extend_from_slice(&count.to_be_bytes());
    let mut rows: Vec<(u32, u32)> = Vec::with_capacity(objects.len());
    let mut z = Compress::new(gix::zlib::Compression::BEST_SPEED);
    for (_, kind, data) in objects {
        // Offsets above 2 GiB need the index's large-offset table; a
        // branch commit is never near that.
        let offset = u32::try_from(pack.len())
            .ok()
            .filter(|o| o & 0x8000_0000 == 0)
            .ok_or_else(|| io::Error::other("pack too large"))?;
        entry_header(*kind, data.len(), &mut pack);
        deflate(&mut z, data, &mut pack)?;
        let crc = crc32fast::hash(&pack[offset as usize..]);
        rows.push((crc, offset));
    }
    let pack_sum = Sha1::digest(&pack);
    pack.extend_from_slice(&pack_sum);

    let mut idx = Vec::with_capacity(8 + 1024 + objects.len() * 28 + 40);
    idx.extend_from_slice(&[0xff, b't', b'O', b'c']);
    idx.extend_from_slice(&2u32.to_be_bytes());
    let mut fanout = [0u32; 256];
    for (id, _, _) in objects {
        fanout[usize::from(id.as_bytes()[0])] += 1;
    }
    let mut total = 0u32;
    for n in fanout {
        total += n;
        idx.extend_from_slice(&total.to_be_bytes());
    }
    for (id, _, _) in objects {
        idx.extend_from_slice(id.as_bytes());
    }
    for (crc, _) in &rows {
        idx.extend_from_slice(&crc.to_be_bytes());
    }
    for (_, offset) in &rows {
        idx.extend_from_slice(&offset.to_be_bytes());
    }
    idx.extend_from_slice(&pack_sum);
    let idx_sum = Sha1::digest(&idx);
    idx.extend_from_slice(&idx_sum);
    Ok((pack, idx))
}

/// Writes `objects` (sorted by id) as `pack-<sum>.pack` and `.idx` in
/// `dir`, each through a temporary file; the index goes last, as `git`
/// only looks for packs through their indexes.
fn write_pack(dir: &Path, objects: &[(ObjectId, Kind, Vec<u8>)]) -> io::Result<()> {
    let (pack, idx) = encode(objects)?;
    let sum = hex::encode(&pack[pack.len() - 20..]);
    fs::create_dir_all(dir)?;
    for (ext, content) in [("pack", &pack), ("idx", &idx)] {
        let tmp = dir.join(format!("tmp_{ext}_{}_{sum}", std::process::id()));
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .open(&tmp)?;
            f.write_all(content)?;
            fs::rename(&tmp, dir.join(format!("pack-{sum}.{ext}")))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    }
    Ok(())
}

/// Every lookup of an object not in the first pack searches the others'
/// indexes, so packs must not pile up: past `gc.autoPackLimit` (50 unless
/// configured; 0 turns this off, as for git) runs `git gc --auto`, which
/// folds them into one, in the background unless `gc.autoDetach` is false.
/// A server that only ever gets P2P sessions has no `git push` to do that.
fn collect_if_many(repo: &gix::Repository, dir: &Path) {
    let limit = repo
        .config_snapshot()
        .integer("gc.autoPackLimit")
        .unwrap_or(50);
    if limit <= 0 {
        return;
    }
    let packs = fs::read_dir(dir).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .filter(|e| e.file_name().as_encoded_bytes().ends_with(b".idx"))
            .count()
    });
    if i64::try_from(packs).unwrap_or(i64::MAX) <= limit {
        return;
    }
    // Nothing of git's may reach our stdout, the protocol stream.
    let status = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo.git_dir())
        .args(["gc", "--auto", "--quiet"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => tracing::warn!(status = %s, "git gc --auto failed"),
        Err(e) => tracing::warn!(error = %e, "could not run git gc --auto"),
    }
}
