//! Meetings that span nodes. Kamailio spreads calls over the nodes before anyone knows
//! which meeting a caller wants, so callers of one meeting land on several nodes. Each
//! meeting has one home ([`dialbridge_shared::MeetingHomes`], in Redis): the node whose
//! meeting task holds the room (roles, lobby, lock, keys) and mixes it. Every other node
//! with callers of it runs a front for it (`conferences::front`) that mixes its own callers
//! locally and joins the home through one leg ([`link`]): a SIP dialog whose RTP carries
//! the node's local mix-minus up and the home's mix (everyone else) down, and whose INFO
//! requests carry the members' joins, leaves and keys up and the home's word to each
//! member down ([`wire`]). A front whose leg dies claims the home again, naming the dead
//! one, and re-joins its callers wherever the home now is.

pub mod link;
pub mod wire;

use std::sync::{Arc, OnceLock};

use dialbridge_conference::ivr::ConferenceKey;
use dialbridge_shared::MeetingHomes;

pub use link::{IncomingLeg, Leg, LegEvent, Link};

use crate::Error;

/// This node's part in the cluster: where meetings live, and its legs.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub homes: MeetingHomes,
    pub link: Link,
}

/// A meeting's name in Redis: `tenant:conference-id`.
pub fn home_name(key: &ConferenceKey) -> String {
    format!("{}:{}", key.tenant.as_str(), key.id.as_str())
}

/// Starts the legs' socket on the media address and the homes on `redis`, and serves
/// the legs other nodes place here into `conferences`. The node's member ids start at a
/// number Redis gives it, so they are unique across nodes.
pub async fn start(
    redis: &str,
    config: &crate::shared::config::SharedConfig,
    instance: &str,
    services: Arc<crate::services::Services>,
) -> Result<(), Error> {
    let cell = Arc::new(OnceLock::new());
    let media = services.media.clone();
    let (link, mut incoming) = Link::start(media.address(), media, cell.clone())
        .await
        .map_err(|e| Error::Config(format!("[shared] the legs' socket: {e}")))?;
    let homes = MeetingHomes::start(
        redis,
        &config.namespace,
        instance,
        link.addr(),
        config.timeout,
    )
    .map_err(|e| Error::Config(format!("[shared] {e}")))?;
    let _ = cell.set(homes.clone());
    let number = match homes.node_number().await {
        Ok(n) => n % (1 << 20),
        Err(_) => {
            tracing::warn!("Redis gave no node number: member ids drawn at random");
            rand::random::<u64>() % (1 << 20)
        }
    };
    tracing::info!(link = %link.addr(), node_number = number, "meetings span nodes through legs");
    services
        .conferences
        .join_cluster(Cluster { homes, link }, (number << 32) | 1);
    tokio::spawn(async move {
        while let Some(leg) = incoming.recv().await {
            services.conferences.serve_leg(leg);
        }
    });
    Ok(())
}
