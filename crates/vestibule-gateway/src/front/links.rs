//! The target connections that one person's connection shares between its
//! forwarded channels (`ssh -L`): many short TCP connections to the same target
//! and login ride one SSH connection instead of a handshake each. Sessions do
//! not share: each has its own target connection (see `session.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;
use vestibule_authz::SessionGrant;

use crate::Shared;
use crate::back::{BackError, TargetLink};
use crate::route::new_session_id;

/// A target name and a login on it.
type LinkKey = (String, String);

#[derive(Clone, Default)]
pub(crate) struct LinkCache {
    links: Arc<Mutex<HashMap<LinkKey, Arc<TargetLink>>>>,
}

impl LinkCache {
    /// The live link for the grant's target and login, connecting if there is none.
    /// Per-connection lock, taken once per channel open, never per packet.
    pub(crate) async fn get(
        &self,
        shared: &Shared,
        grant: &SessionGrant,
    ) -> Result<Arc<TargetLink>, BackError> {
        let key = (grant.target().name.clone(), grant.login().to_owned());
        let mut links = self.links.lock().await;
        if let Some(link) = links.get(&key).filter(|l| !l.is_closed()) {
            return Ok(link.clone());
        }
        let link = Arc::new(TargetLink::connect(shared, grant, &new_session_id()).await?);
        links.insert(key, link.clone());
        Ok(link)
    }
}
