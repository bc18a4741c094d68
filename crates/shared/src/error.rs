//! The shared state's one error type: what can stop it from starting. Once started,
//! Redis being away is not an error but a refusal ([`crate::SharedRefusal::Unavailable`]).

/// Why the shared state could not start.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The Redis URL does not parse, or names what the client cannot use.
    #[error("redis {url:?}: {source}")]
    Redis {
        /// The URL as configured.
        url: String,
        /// What the client said.
        source: redis::RedisError,
    },
}
