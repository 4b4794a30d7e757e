//! CONNECT: run git-upload-pack or git-receive-pack on this repository and
//! tunnel its stdin/stdout through DATA messages, ending with CONNECTDONE.
//!
//! Real git-annex-shell refuses CONNECT under p2pstdio; we serve it so plain
//! git (through git-remote-annexproxy) can reach a repository over the same
//! P2P session as its content.

use std::process::Stdio;

use annex::p2p::{Message, Service};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Command;

use crate::serve::{Flow, ServeError, Session};

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
    let stdin = child.stdin.take().expect("stdin was piped");
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let mut halves = s.conn.split();
    let (reading, writing) = (&mut halves.reading, &mut halves.writing);
    let sent = {
        // The client's bytes go to git until it says CONNECTDONE, hangs up
        // or git stops reading; then git's stdin closes.
        let input = async move {
            let mut stdin = stdin;
            let _ = reading.recv_stream(&mut stdin).await;
        };
        // git's output goes to the client as fast as the client takes it:
        // a client that stops reading leaves it in git's pipe.
        let output = writing.send_stream(&mut stdout);
        tokio::pin!(input, output);
        let mut input_done = false;
        loop {
            tokio::select! {
                () = &mut input, if !input_done => input_done = true,
                sent = &mut output => break sent,
            }
        }
    };
    if let Err(e) = sent {
        return Err(e.into());
    }
    let status = child.wait().await?;
    let code = status.code().unwrap_or(1);
    writing.write_message(&Message::ConnectDone(code)).await?;
    Ok(Flow::Stop)
}
