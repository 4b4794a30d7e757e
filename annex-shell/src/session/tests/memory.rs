//! An in-memory back-end for the session loop's tests: objects in a map,
//! every call recorded, a switch that makes it a node that is down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use annex::key::Key;
use annex::p2p::{Connection, Service};
use annex::store::VerifyMode;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{key, ME};
use crate::backend::{Backend, BackendError, Failure, Outcome, StoreEnd, Storing};

/// What the back-end was asked and holds, shared with the test.
#[derive(Default)]
pub(super) struct State {
    pub(super) objects: BTreeMap<Key, Vec<u8>>,
    /// Bytes an interrupted PUT left.
    pub(super) partial: BTreeMap<Key, Vec<u8>>,
    pub(super) locked: bool,
    /// Names of the back-end calls, in order.
    pub(super) calls: Vec<String>,
    pub(super) finished: bool,
    /// Other repositories that take part in stores and removals.
    pub(super) others: Vec<String>,
    /// A node that is down: every request is refused.
    pub(super) down: bool,
}

#[derive(Clone, Default)]
pub(super) struct Memory {
    state: Arc<Mutex<State>>,
    receiving: Option<(Key, Vec<u8>)>,
}

impl Memory {
    pub(super) fn with(objects: &[(&str, &[u8])]) -> Memory {
        let m = Memory::default();
        for (k, v) in objects {
            m.st().objects.insert(key(k), v.to_vec());
        }
        m
    }

    pub(super) fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state")
    }

    fn call(&self, c: impl Into<String>) -> Result<(), BackendError> {
        let mut st = self.st();
        st.calls.push(c.into());
        if st.down {
            return Err(BackendError::Refused(Failure {
                node: "node1".into(),
                what: "request",
                why: "node1: connection lost".into(),
            }));
        }
        Ok(())
    }
}

impl Backend for Memory {
    fn uuid(&self) -> &str {
        ME
    }

    async fn negotiate(&mut self, offered: u32) -> u32 {
        self.st().calls.push(format!("negotiate {offered}"));
        offered
    }

    async fn bypass(&mut self, set: Vec<String>) -> Result<(), BackendError> {
        self.st().calls.push(format!("bypass {}", set.join(" ")));
        if set.iter().any(|u| u == ME) {
            return Err(BackendError::Refused(Failure {
                node: ME.into(),
                what: "bypass",
                why: format!("{ME}: proxy loop"),
            }));
        }
        Ok(())
    }

    async fn check_present(&mut self, key: &Key) -> Result<bool, BackendError> {
        self.call("check_present")?;
        Ok(self.st().objects.contains_key(key))
    }

    async fn lock(&mut self, key: &Key) -> Result<bool, BackendError> {
        self.call("lock")?;
        let mut st = self.st();
        st.locked = st.objects.contains_key(key);
        Ok(st.locked)
    }

    async fn unlock(&mut self) {
        self.st().calls.push("unlock".into());
        self.st().locked = false;
    }

    async fn remove(&mut self, key: &Key, deadline: Option<u64>) -> Result<Outcome, BackendError> {
        self.call(format!("remove {deadline:?}"))?;
        let mut st = self.st();
        let ok = deadline.is_none_or(|d| d > 100);
        if ok {
            st.objects.remove(key);
        }
        Ok(Outcome {
            ok,
            also: st.others.clone(),
        })
    }

    async fn timestamp(&mut self) -> Result<u64, BackendError> {
        self.call("timestamp")?;
        Ok(100)
    }

    async fn retrieve<R, W>(
        &mut self,
        key: &Key,
        offset: u64,
        _file: Option<&str>,
        client: &mut Connection<R, W>,
    ) -> Result<bool, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        self.call(format!("retrieve {offset}"))?;
        let content = self.st().objects.get(key).cloned();
        let Some(content) = content else {
            client.send_data(0, &mut tokio::io::empty()).await?;
            return Ok(false);
        };
        let body = &content[(offset as usize).min(content.len())..];
        client.send_data(body.len() as u64, &mut &body[..]).await?;
        Ok(true)
    }

    async fn retrieved(&mut self, verdict: Option<bool>) {
        self.st().calls.push(format!("retrieved {verdict:?}"));
    }

    async fn store_begin(
        &mut self,
        key: &Key,
        _file: Option<&str>,
    ) -> Result<Storing, BackendError> {
        self.call("store_begin")?;
        let st = self.st();
        if st.objects.contains_key(key) {
            return Ok(Storing::AlreadyHave(st.others.clone()));
        }
        let partial = st.partial.get(key).cloned().unwrap_or_default();
        drop(st);
        let offset = partial.len() as u64;
        self.receiving = Some((key.clone(), partial));
        Ok(Storing::From(offset))
    }

    async fn store_body<R, W>(
        &mut self,
        len: u64,
        client: &mut Connection<R, W>,
    ) -> Result<(), BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        self.st().calls.push(format!("store_body {len}"));
        let (_, bytes) = self.receiving.as_mut().expect("store_begin first");
        client.recv_data(len, bytes).await?;
        Ok(())
    }

    async fn store_end(&mut self, end: StoreEnd) -> Result<Outcome, BackendError> {
        self.call(format!("store_end {end:?}"))?;
        let (key, bytes) = self.receiving.take().expect("store_begin first");
        let mut st = self.st();
        let ok = match end {
            // The test's "verification": the content is "hello".
            StoreEnd::Body(mode) => mode != VerifyMode::Invalid && bytes == b"hello",
            StoreEnd::Present => true,
            StoreEnd::Abandon(_) => false,
        };
        if ok {
            st.objects.insert(key, bytes);
        }
        Ok(Outcome {
            ok,
            also: if ok { st.others.clone() } else { Vec::new() },
        })
    }

    async fn changed_refs(&mut self) -> Result<Vec<String>, BackendError> {
        self.call("changed_refs")?;
        Ok(vec!["aaaa".into(), "bbbb".into()])
    }

    async fn git_service<R, W>(
        &mut self,
        service: Service,
        client: &mut Connection<R, W>,
    ) -> Result<Option<i32>, BackendError>
    where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send,
    {
        self.call(format!("git {}", service.as_str()))?;
        let mut halves = client.split();
        let mut input = Vec::new();
        halves.reading.recv_stream(&mut input).await?;
        halves.writing.send_stream(&mut &input[..]).await?;
        Ok(Some(0))
    }

    async fn finish(&mut self) -> Result<(), BackendError> {
        self.st().finished = true;
        Ok(())
    }
}
