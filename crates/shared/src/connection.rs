//! The one way every part of this crate reaches Redis: a client for `url` and a lazily
//! connecting, reconnecting connection whose every wait is bounded by `timeout` (Redis
//! away is a refusal in time, never a hang), with at most one retry.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::SharedError;

/// The client (for what needs connections of its own, such as a subscription) and the
/// shared connection.
pub(crate) fn connect(
    url: &str,
    timeout: Duration,
) -> Result<(redis::Client, ConnectionManager), SharedError> {
    let error = |source| SharedError::Redis {
        url: url.to_string(),
        source,
    };
    let client = redis::Client::open(url).map_err(error)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(timeout);
    let conn = ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(error)?;
    Ok((client, conn))
}
