//! The verbs that are more than one request and one answer: the body
//! transfers (GET, PUT), the waits (LOCKCONTENT, NOTIFYCHANGE) and CONNECT.
//! Each speaks the client's side of the protocol and leaves the storage to
//! the back-end.

use annex::key::Key;
use annex::p2p::{Message, Service};
use annex::store::VerifyMode;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, ServeError, Session, LOCKED_ERROR, WAITING_ERROR};
use crate::backend::{Backend, BackendError, StoreEnd, Storing};

impl<R, W, B> Session<R, W, B>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
    B: Backend,
{
    /// GET: the content as DATA, then whether it is intact, then the
    /// client's verdict for the back-end.
    pub(super) async fn get(
        &mut self,
        offset: u64,
        file: Option<String>,
        key: Key,
    ) -> Result<Flow, ServeError> {
        let sent = self
            .backend
            .retrieve(&key, offset, file.as_deref(), &mut self.conn)
            .await;
        let valid = match sent {
            Ok(valid) => valid,
            Err(e @ BackendError::Refused(_)) => {
                self.refused(e).await?;
                return Ok(Flow::Continue);
            }
            Err(e) => return Err(e.into()),
        };
        if Message::Valid.known_in(self.version) {
            let validity = if valid {
                Message::Valid
            } else {
                Message::Invalid
            };
            self.send(validity).await?;
        }
        let verdict = self.read_verdict().await?;
        self.backend.retrieved(verdict).await;
        Ok(match verdict {
            None => Flow::Stop,
            Some(_) => Flow::Continue,
        })
    }

    /// PUT: the offset to send from, the DATA into the back-end, the
    /// sender's VALID or INVALID, and the back-end's outcome.
    ///
    /// Whatever goes wrong on the back-end's side the DATA is still read to
    /// its end, so the protocol stays in step and the client gets a FAILURE
    /// for this key alone.
    pub(super) async fn put(&mut self, file: Option<String>, key: Key) -> Result<Flow, ServeError> {
        match self.backend.store_begin(&key, file.as_deref()).await {
            Ok(Storing::From(offset)) => {
                self.send(Message::PutFrom(offset)).await?;
                self.backend.store_offered().await;
            }
            Ok(Storing::AlreadyHave(also)) => {
                let reply = if also.is_empty() {
                    Message::AlreadyHave
                } else {
                    Message::AlreadyHavePlus(also).fit(self.version)
                };
                self.send(reply).await?;
                return Ok(Flow::Continue);
            }
            Err(e) => {
                self.refused(e).await?;
                return Ok(Flow::Continue);
            }
        }
        let msg = match self.conn.read_message().await {
            Ok(Some(m)) => Some(m),
            // What arrived stays for a resume; the back-end drops it.
            Ok(None) => return Ok(Flow::Stop),
            Err(e) if e.is_recoverable() => None,
            Err(e) => return Err(e.into()),
        };
        let end = match msg {
            Some(Message::Data(len)) => {
                tracing::Span::current().record("bytes", len);
                self.backend.store_body(len, &mut self.conn).await?;
                let (mode, hung_up) = if Message::Valid.known_in(self.version) {
                    self.read_validity().await?
                } else {
                    (VerifyMode::Unknown, false)
                };
                if hung_up {
                    // As git-annex: content that arrived whole and verifies
                    // is kept and logged even though nobody hears the verdict.
                    let outcome = self.backend.store_end(StoreEnd::Body(mode)).await?;
                    let _ = self.send(outcome.reply(self.version)).await;
                    return Ok(Flow::Stop);
                }
                StoreEnd::Body(mode)
            }
            Some(Message::DataPresent) if Message::DataPresent.known_in(self.version) => {
                StoreEnd::Present
            }
            // The sender could not send after all; it expects no reply.
            Some(Message::Error(why)) => {
                self.backend.store_end(StoreEnd::Abandon(why)).await?;
                return Ok(Flow::Continue);
            }
            _ => {
                let why = "expected DATA".to_owned();
                self.backend
                    .store_end(StoreEnd::Abandon(why.clone()))
                    .await?;
                self.send(Message::Error(why)).await?;
                return Ok(Flow::Continue);
            }
        };
        let outcome = self.backend.store_end(end).await;
        let version = self.version;
        self.answer(outcome.map(|o| o.reply(version))).await
    }

    /// LOCKCONTENT: the lock is held until the client's next message,
    /// which should be UNLOCKCONTENT.
    pub(super) async fn lock_content(&mut self, key: Key) -> Result<Flow, ServeError> {
        match self.backend.lock(&key).await {
            Ok(true) => self.send(Message::Success).await?,
            Ok(false) => {
                self.send(Message::Failure).await?;
                return Ok(Flow::Continue);
            }
            Err(e) => {
                self.refused(e).await?;
                return Ok(Flow::Continue);
            }
        }
        let next = self.conn.read_message().await;
        self.backend.unlock().await;
        match next {
            Ok(Some(Message::UnlockContent)) => Ok(Flow::Continue),
            Ok(None) => Ok(Flow::Stop),
            // git-annex consumes whatever came instead; so do we, but say so.
            Ok(Some(_)) => {
                self.send(Message::Error(LOCKED_ERROR.into())).await?;
                Ok(Flow::Continue)
            }
            Err(e) if e.is_recoverable() => {
                self.send(Message::Error(LOCKED_ERROR.into())).await?;
                Ok(Flow::Continue)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// NOTIFYCHANGE: CHANGED with the new values once a ref changes. The
    /// client waits silently; anything from it, or its hanging up, ends
    /// the wait. (Real git-annex-shell refuses this under p2pstdio.)
    pub(super) async fn notify_change(&mut self) -> Result<Flow, ServeError> {
        let (backend, conn) = (&mut self.backend, &mut self.conn);
        let heard = tokio::select! {
            // A change and a word from the client at once: the change was
            // first (and the client hears of it).
            biased;
            changed = backend.changed_refs() => Ok(changed),
            msg = conn.read_message() => Err(msg),
        };
        match heard {
            Ok(changed) => {
                let changed = changed.map(Message::Changed);
                self.answer(changed).await
            }
            Err(Ok(None) | Ok(Some(Message::Error(_)))) => Ok(Flow::Stop),
            Err(_) => {
                self.send(Message::Error(WAITING_ERROR.into())).await?;
                Ok(Flow::Stop)
            }
        }
    }

    /// CONNECT: git's service tunnelled through DATA, then CONNECTDONE
    /// with its exit code; the session is git's from here.
    pub(super) async fn connect(&mut self, service: Service) -> Result<Flow, ServeError> {
        match self.backend.git_service(service, &mut self.conn).await {
            Ok(Some(code)) => self.send(Message::ConnectDone(code)).await?,
            Ok(None) => {}
            Err(e) => self.refused(e).await?,
        }
        Ok(Flow::Stop)
    }

    /// The client's verdict after we sent DATA. `None` when the client hung
    /// up. Anything but a verdict gets the ERROR git-annex sends, and counts
    /// as a failure.
    async fn read_verdict(&mut self) -> Result<Option<bool>, ServeError> {
        let msg = match self.conn.read_message().await {
            Ok(Some(m)) => Some(m),
            Ok(None) => return Ok(None),
            Err(e) if e.is_recoverable() => None,
            Err(e) => return Err(e.into()),
        };
        let plus = Message::SuccessPlus(Vec::new()).known_in(self.version);
        Ok(Some(match msg {
            Some(Message::Success) => true,
            Some(Message::Failure) | Some(Message::Error(_)) => false,
            Some(Message::SuccessPlus(_)) if plus => true,
            Some(Message::FailurePlus(_)) if plus => false,
            _ => {
                let expected = if plus {
                    "expected SUCCESS or SUCCESS-PLUS or FAILURE or FAILURE-PLUS"
                } else {
                    "expected SUCCESS or FAILURE"
                };
                self.send(Message::Error(expected.into())).await?;
                false
            }
        }))
    }

    /// The sender's word on the DATA it sent, and whether it hung up
    /// instead of saying it (then the content is verified in full, as with
    /// protocol 0).
    async fn read_validity(&mut self) -> Result<(VerifyMode, bool), ServeError> {
        let msg = match self.conn.read_message().await {
            Ok(Some(m)) => Some(m),
            Ok(None) => return Ok((VerifyMode::Unknown, true)),
            Err(e) if e.is_recoverable() => None,
            Err(e) => return Err(e.into()),
        };
        Ok(match msg {
            Some(Message::Valid) => (VerifyMode::Valid, false),
            Some(Message::Invalid) => (VerifyMode::Invalid, false),
            _ => {
                self.send(Message::Error("expected VALID or INVALID".into()))
                    .await?;
                (VerifyMode::Unknown, false)
            }
        })
    }
}
