//! git-annex keys: `VARIETY[-sSIZE][-mMTIME][-SCHUNK][-CNUM]--NAME`.

/// A parsed key. Serialises back to the same text it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    // filled in by the key module's owner
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("invalid key {0:?}")]
    Invalid(String),
}

impl Key {
    pub fn parse(_s: &str) -> Result<Key, KeyError> {
        todo!("key parsing")
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        todo!("key serialisation")
    }
}
