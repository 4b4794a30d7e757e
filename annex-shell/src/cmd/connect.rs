//! CONNECT: run git-upload-pack or git-receive-pack on this repository and
//! tunnel its stdin/stdout through DATA messages, ending with CONNECTDONE.
//!
//! Real git-annex-shell refuses CONNECT under p2pstdio; we serve it so plain
//! git (through git-remote-annexproxy) can reach a repository over the same
//! P2P session as its content.

use std::process::Stdio;

use annex::p2p::{Message, Service};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::serve::{Flow, ServeError, Session};

const CHUNK: usize = 64 * 1024;

pub async fn handle<R, W>(s: &mut Session<R, W>, service: Service) -> Result<Flow, ServeError>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let sub = match service {
        Service::UploadPack => "upload-pack",
        Service::ReceivePack => "receive-pack",
    };
    let mut child = Command::new("git")
        .arg(sub)
        .arg(s.repo.work_dir().unwrap_or(s.repo.git_dir()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take().expect("stdout was piped");

    // git's output is drained by its own task so git never blocks on a full
    // pipe while we are busy feeding it the client's data.
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut client_done = false;
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(bytes) => {
                    s.conn.send_data(bytes.len() as u64, &mut bytes.as_slice()).await?;
                }
                None => break,
            },
            msg = s.conn.read_message(), if !client_done => match msg {
                Ok(Some(Message::Data(len))) => {
                    match stdin.as_mut() {
                        Some(w) => s.conn.relay_data(len, w).await?,
                        None => s.conn.relay_data(len, &mut tokio::io::sink()).await?,
                    }
                }
                Ok(Some(Message::ConnectDone(_))) | Ok(None) => {
                    client_done = true;
                    stdin.take();
                }
                Ok(Some(_)) | Err(_) => {
                    client_done = true;
                    stdin.take();
                }
            },
        }
    }
    if let Some(mut w) = stdin.take() {
        let _ = w.shutdown().await;
    }
    let _ = reader.await;
    let status = child.wait().await?;
    let code = status.code().unwrap_or(1);
    s.send(Message::ConnectDone(code)).await?;
    Ok(Flow::Stop)
}
