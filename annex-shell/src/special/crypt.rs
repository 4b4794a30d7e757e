//! Any [`Storage`] with git-annex's encryption on top: the framework
//! names and streams plaintext, the storage below sees only HMAC names
//! and gpg's output ([`super::crypto`]). Without encryption every call
//! passes through unchanged.
//!
//! - a write pipes the bytes through a gpg process on their way to the
//!   storage's staged write (a pipe's worth in flight, never the whole
//!   object); commit closes gpg's input, sends the rest of its output and
//!   checks its exit before the object becomes visible;
//! - a read pipes the object through `gpg --decrypt`, dropping the bytes
//!   before the offset asked for (gpg streams cannot be entered midway);
//! - an object's size is the plaintext's, known from its key (the chunk
//!   key's share of the key's size): ciphertext sizes say nothing, gpg
//!   compressing. A key without a size is decrypted once to count;
//! - a staged write cannot be resumed (gpg's encryption of the same bytes
//!   differs each time), so it restarts; a chunked upload still resumes
//!   after its complete chunks, which the framework reads back decrypted
//!   to hash them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use annex::key::Key;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use super::crypto::{base_args, Encryption, GPG};
use super::storage::{StagedWrite, Storage, StorageError};

/// How much of gpg's output is moved at a time.
const PIPE_BUF: usize = 64 * 1024;

/// How much of an object is read at a time to feed `gpg --decrypt`.
const FEED_BUF: usize = 1 << 20;

/// A storage, encrypted when `enc` is given.
pub struct Crypt<S> {
    inner: S,
    enc: Option<Arc<Encryption>>,
}

impl<S: Storage> Crypt<S> {
    pub fn new(inner: S, enc: Option<Arc<Encryption>>) -> Crypt<S> {
        Crypt { inner, enc }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn name(&self, key: &Key) -> Key {
        match &self.enc {
            Some(enc) => enc.object_name(key),
            None => key.clone(),
        }
    }

    /// Why content cannot be decrypted here, as a storage error.
    fn unreadable(&self) -> Result<(), StorageError> {
        match self.enc.as_ref().and_then(|e| e.undecryptable.clone()) {
            Some(why) => Err(StorageError::Unreadable {
                remote: self.inner.remote().to_owned(),
                why,
            }),
            None => Ok(()),
        }
    }

    fn gpg_error(&self, op: &'static str, key: &Key, source: io::Error) -> StorageError {
        StorageError::Io {
            remote: self.inner.remote().to_owned(),
            op,
            object: key.to_string(),
            source,
        }
    }
}

impl<S: Storage> Crypt<S>
where
    S::Reader: 'static,
{
    /// Decrypt the object `name` of the storage below (already the
    /// encrypted name) as a stream, dropping its first `skip` bytes.
    async fn decrypting(
        &self,
        enc: &Encryption,
        key: &Key,
        skip: u64,
    ) -> Result<Decrypting, StorageError> {
        self.unreadable()?;
        let source = self.inner.read(&enc.object_name(key), 0).await?;
        let mut child =
            gpg(enc, &enc.decrypt_args()).map_err(|e| self.gpg_error("decrypt", key, e))?;
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let preamble = enc.stdin_preamble();
        let feed = tokio::spawn(async move {
            // A failure to feed shows as gpg's: the stream ends early.
            let fed = async {
                stdin.write_all(&preamble).await?;
                // Large reads: each read of a tokio file is a trip to the
                // blocking pool, and tokio::io::copy's are of 8 KiB.
                let mut source = tokio::io::BufReader::with_capacity(FEED_BUF, source);
                tokio::io::copy_buf(&mut source, &mut stdin).await?;
                stdin.shutdown().await
            };
            let _ = fed.await;
            drop(stdin);
            let status = child.wait().await?;
            if status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!("gpg --decrypt: {status}")))
            }
        });
        Ok(Decrypting {
            stdout,
            feed,
            skip,
            expect: plain_size_of(key),
            seen: 0,
            buf: vec![0; PIPE_BUF],
            pos: 0,
            len: 0,
            end: None,
        })
    }

    /// The plaintext size of an object present under `key`.
    async fn plain_size(&self, enc: &Encryption, key: &Key) -> Result<u64, StorageError> {
        if let Some(size) = plain_size_of(key) {
            return Ok(size);
        }
        let mut reader = self.decrypting(enc, key, 0).await?;
        let counted = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
        counted.map_err(|e| self.gpg_error("decrypt", key, e))
    }
}

/// What a key (or chunk key) says its content's size is.
fn plain_size_of(key: &Key) -> Option<u64> {
    let size = key.size()?;
    match (key.chunk_size(), key.chunk_num()) {
        (Some(chunk), Some(n)) if n > 0 => Some(
            size.saturating_sub((n - 1).saturating_mul(chunk))
                .min(chunk),
        ),
        _ => Some(size),
    }
}

/// gpg with piped stdin and stdout; killed when dropped.
fn gpg(enc: &Encryption, args: &[String]) -> io::Result<Child> {
    let mut cmd = Command::new(GPG);
    if let Some(home) = &enc.gnupg_home {
        cmd.env("GNUPGHOME", home);
    }
    cmd.args(base_args())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // gpg's complaints would reach the client's terminal mid-protocol.
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
}

impl<S> Storage for Crypt<S>
where
    S: Storage,
    S::Reader: 'static,
{
    type Reader = CryptReader<S::Reader>;
    type Staged = CryptWrite<S::Staged>;

    fn remote(&self) -> &str {
        self.inner.remote()
    }

    async fn stat(&self, name: &Key) -> Result<Option<u64>, StorageError> {
        let found = self.inner.stat(&self.name(name)).await?;
        match (&self.enc, found) {
            (Some(enc), Some(_)) => Ok(Some(self.plain_size(enc, name).await?)),
            (_, found) => Ok(found),
        }
    }

    async fn read(&self, name: &Key, offset: u64) -> Result<Self::Reader, StorageError> {
        match &self.enc {
            None => Ok(CryptReader::Plain(self.inner.read(name, offset).await?)),
            Some(enc) => Ok(CryptReader::Decrypting(Box::new(
                self.decrypting(enc, name, offset).await?,
            ))),
        }
    }

    fn readable(&self) -> Result<(), StorageError> {
        self.unreadable()?;
        self.inner.readable()
    }

    /// Reading back stays as cheap as the storage's (a directory's,
    /// decrypted on the way), so a direct upload is checked by its hash;
    /// content that cannot be decrypted here is believed by its size.
    fn read_back_is_cheap(&self) -> bool {
        self.unreadable().is_ok() && self.inner.read_back_is_cheap()
    }

    /// Only plaintext may go to the kernel as it is.
    fn local_file(&self, name: &Key) -> Result<Option<std::fs::File>, StorageError> {
        match self.enc {
            None => self.inner.local_file(name),
            Some(_) => Ok(None),
        }
    }

    async fn begin_write(
        &self,
        name: &Key,
        size: Option<u64>,
    ) -> Result<Self::Staged, StorageError> {
        let Some(enc) = &self.enc else {
            return Ok(CryptWrite::Plain(self.inner.begin_write(name, size).await?));
        };
        // The ciphertext's size is not the plaintext's.
        let mut staged = self.inner.begin_write(&enc.object_name(name), None).await?;
        if staged.staged() > 0 {
            staged.restart().await?;
        }
        let mut w = Encrypting {
            enc: enc.clone(),
            remote: self.inner.remote().to_owned(),
            key: name.clone(),
            staged,
            gpg: None,
            buf: vec![0; PIPE_BUF],
        };
        w.start().await?;
        Ok(CryptWrite::Encrypting(Box::new(w)))
    }

    async fn room_for(&self, bytes: u64) -> Result<(), StorageError> {
        self.inner.room_for(bytes).await
    }

    async fn remove(&self, name: &Key) -> Result<(), StorageError> {
        self.inner.remove(&self.name(name)).await
    }
}

/// An object's bytes: the storage's, or decrypted.
pub enum CryptReader<R> {
    Plain(R),
    Decrypting(Box<Decrypting>),
}

impl<R: AsyncRead + Unpin> AsyncRead for CryptReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            CryptReader::Plain(r) => Pin::new(r).poll_read(cx, buf),
            CryptReader::Decrypting(d) => Pin::new(&mut **d).poll_read(cx, buf),
        }
    }
}

/// gpg's decrypted output of an object fed to it by a task. gpg checks
/// the object's integrity (its MDC) only after all the plaintext, so the
/// bytes that complete the size the key gives are handed out only once
/// gpg has ended well: a reader that takes exactly the object's size
/// still hears of an altered object.
pub struct Decrypting {
    stdout: ChildStdout,
    feed: JoinHandle<io::Result<()>>,
    /// Plaintext bytes still to drop before the offset asked for.
    skip: u64,
    /// The plaintext's size, when the key gives it.
    expect: Option<u64>,
    /// Plaintext bytes read from gpg so far (dropped ones included).
    seen: u64,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    /// How gpg ended, once it has.
    end: Option<Result<(), String>>,
}

impl Decrypting {
    /// Wait for gpg's end: no more output, and a good exit.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.end.is_none() {
            let mut probe = [0u8; 1];
            let mut probe = ReadBuf::new(&mut probe);
            ready!(Pin::new(&mut self.stdout).poll_read(cx, &mut probe))?;
            let end = if probe.filled().is_empty() {
                match ready!(Pin::new(&mut self.feed).poll(cx)) {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            } else {
                Err("more plaintext than the key's size".to_owned())
            };
            self.end = Some(end);
        }
        match self.end.as_ref().expect("set above") {
            Ok(()) => Poll::Ready(Ok(())),
            Err(why) => Poll::Ready(Err(io::Error::other(why.clone()))),
        }
    }
}

impl AsyncRead for Decrypting {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.len {
                if this.expect.is_some_and(|e| this.seen >= e) {
                    ready!(this.poll_end(cx))?;
                }
                let n = out.remaining().min(this.len - this.pos);
                out.put_slice(&this.buf[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.end.is_some() {
                return this.poll_end(cx);
            }
            let mut rb = ReadBuf::new(&mut this.buf);
            ready!(Pin::new(&mut this.stdout).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                return this.poll_end(cx);
            }
            this.seen += n as u64;
            let dropped = usize::try_from(this.skip).unwrap_or(usize::MAX).min(n);
            this.skip -= dropped as u64;
            (this.pos, this.len) = (dropped, n);
        }
    }
}

impl Drop for Decrypting {
    fn drop(&mut self) {
        // Stops the feeding and, with it, gpg (killed on drop).
        self.feed.abort();
    }
}

/// A staged write: the storage's, or through gpg.
pub enum CryptWrite<W> {
    Plain(W),
    Encrypting(Box<Encrypting<W>>),
}

/// What a step of [`Encrypting::write`] did.
enum Step {
    Wrote(io::Result<usize>),
    Output(io::Result<usize>),
}

/// A gpg process encrypting into the storage's staged write.
pub struct Encrypting<W> {
    enc: Arc<Encryption>,
    remote: String,
    key: Key,
    staged: W,
    gpg: Option<(Child, Option<ChildStdin>, ChildStdout)>,
    buf: Vec<u8>,
}

impl<W: StagedWrite> Encrypting<W> {
    fn error(&self, op: &'static str, source: io::Error) -> StorageError {
        StorageError::Io {
            remote: self.remote.clone(),
            op,
            object: self.key.to_string(),
            source,
        }
    }

    /// A new gpg, its passphrase given.
    async fn start(&mut self) -> Result<(), StorageError> {
        let mut child =
            gpg(&self.enc, &self.enc.encrypt_args()).map_err(|e| self.error("encrypt", e))?;
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        // A line, well under a pipe's buffer: gpg need not read yet.
        let preamble = self.enc.stdin_preamble();
        let wrote = stdin.write_all(&preamble).await;
        wrote.map_err(|e| self.error("encrypt", e))?;
        self.gpg = Some((child, Some(stdin), stdout));
        Ok(())
    }

    /// Feed `bytes` to gpg, passing on what it outputs meanwhile (gpg
    /// stops reading when its output is not taken).
    async fn write(&mut self, mut bytes: &[u8]) -> Result<(), StorageError> {
        while !bytes.is_empty() {
            let Some((_, Some(stdin), stdout)) = self.gpg.as_mut() else {
                unreachable!("started, and its input closed only by commit");
            };
            let buf = &mut self.buf;
            let step = tokio::select! {
                n = stdin.write(bytes) => Step::Wrote(n),
                n = stdout.read(buf) => Step::Output(n),
            };
            match step {
                Step::Wrote(Ok(n)) => bytes = &bytes[n..],
                Step::Output(Ok(0)) => {
                    let e = io::Error::other("gpg ended before its input");
                    return Err(self.error("encrypt", e));
                }
                Step::Output(Ok(n)) => self.staged.write(&self.buf[..n]).await?,
                Step::Wrote(Err(e)) | Step::Output(Err(e)) => return Err(self.error("encrypt", e)),
            }
        }
        Ok(())
    }

    /// Close gpg's input and store the rest of its output.
    async fn flush(&mut self) -> Result<(), StorageError> {
        let (mut child, stdin, mut stdout) = self.gpg.take().expect("started");
        if let Some(mut stdin) = stdin {
            stdin
                .shutdown()
                .await
                .map_err(|e| self.error("encrypt", e))?;
        }
        loop {
            let n = stdout.read(&mut self.buf).await;
            match n.map_err(|e| self.error("encrypt", e))? {
                0 => break,
                n => self.staged.write(&self.buf[..n]).await?,
            }
        }
        let status = child.wait().await.map_err(|e| self.error("encrypt", e))?;
        if !status.success() {
            let e = io::Error::other(format!("gpg: {status}"));
            return Err(self.error("encrypt", e));
        }
        Ok(())
    }
}

impl<W> StagedWrite for CryptWrite<W>
where
    W: StagedWrite,
    W::Reader: 'static,
{
    type Reader = CryptReader<W::Reader>;

    fn staged(&self) -> u64 {
        match self {
            CryptWrite::Plain(w) => w.staged(),
            // Restarted when begun.
            CryptWrite::Encrypting(_) => 0,
        }
    }

    async fn read_staged(&mut self) -> Result<Option<Self::Reader>, StorageError> {
        match self {
            CryptWrite::Plain(w) => Ok(w.read_staged().await?.map(CryptReader::Plain)),
            CryptWrite::Encrypting(_) => Ok(None),
        }
    }

    fn checkpoint(&self) -> Option<u64> {
        match self {
            CryptWrite::Plain(w) => w.checkpoint(),
            CryptWrite::Encrypting(_) => None,
        }
    }

    fn token(&self) -> Option<String> {
        match self {
            CryptWrite::Plain(w) => w.token(),
            CryptWrite::Encrypting(_) => None,
        }
    }

    async fn restart(&mut self) -> Result<(), StorageError> {
        match self {
            CryptWrite::Plain(w) => w.restart().await,
            CryptWrite::Encrypting(e) => {
                e.gpg = None;
                e.staged.restart().await?;
                e.start().await
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        match self {
            CryptWrite::Plain(w) => w.write(bytes).await,
            CryptWrite::Encrypting(e) => e.write(bytes).await,
        }
    }

    async fn commit(self) -> Result<(), StorageError> {
        match self {
            CryptWrite::Plain(w) => w.commit().await,
            CryptWrite::Encrypting(mut e) => {
                if let Err(err) = e.flush().await {
                    let _ = e.staged.abort().await;
                    return Err(err);
                }
                e.staged.commit().await
            }
        }
    }

    async fn abort(self) -> Result<(), StorageError> {
        match self {
            CryptWrite::Plain(w) => w.abort().await,
            CryptWrite::Encrypting(e) => {
                let Encrypting { staged, .. } = *e;
                staged.abort().await
            }
        }
    }
}

#[cfg(test)]
#[path = "crypt_tests.rs"]
mod tests;
