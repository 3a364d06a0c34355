//! A stopped container's veth, deleted off the stop path. Unregistering a network device
//! waits for RCU grace periods, ~20 ms per veth on a small VM, and nothing after a stop
//! needs the device gone. Until it is, its address stays out of allocation: the old
//! interface has the same address-derived MAC and could still take the new one's frames.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rtnetlink::Handle;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::link;

/// How long a daemon that exits waits for the deletions it started.
const FINISH_WITHIN: Duration = Duration::from_secs(5);

/// (network id, address) of each veth being deleted. An address is never handed out while
/// held, so it is never held twice.
type Held = Arc<Mutex<HashSet<(String, Ipv4Addr)>>>;

#[derive(Default)]
pub(crate) struct Releases {
    held: Held,
    /// Woken at the end of each deletion.
    done: Arc<Notify>,
    tasks: Mutex<JoinSet<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere leaves it consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Releases {
    /// Addresses of `network` that must not be handed out yet.
    pub(crate) fn held(&self, network: &str) -> HashSet<Ipv4Addr> {
        lock(&self.held)
            .iter()
            .filter(|(n, _)| n == network)
            .map(|&(_, ip)| ip)
            .collect()
    }

    /// Deletes interface `index` (`name`, which held `ip` on `network`) in the background.
    pub(crate) fn release(
        &self,
        nl: &Handle,
        index: u32,
        name: String,
        network: String,
        ip: Ipv4Addr,
    ) {
        lock(&self.held).insert((network.clone(), ip));
        let (nl, held, done) = (nl.clone(), self.held.clone(), self.done.clone());
        lock(&self.tasks).spawn(async move {
            if let Err(e) = link::delete_index(&nl, index, &name).await {
                tracing::warn!(interface = %name, error = %e, "deleting a container's veth failed");
            }
            lock(&held).remove(&(network, ip));
            done.notify_waiters();
        });
        // Finished tasks are reaped here, so the set stays as small as what is in flight.
        while lock(&self.tasks).try_join_next().is_some() {}
    }

    /// Waits until no veth being deleted holds `ip` on `network`, for a container that asks
    /// for that address. Bounded: the caller's allocation then reports the address in use.
    pub(crate) async fn wait_for(&self, network: &str, ip: Ipv4Addr) {
        let freed = async {
            loop {
                let notified = self.done.notified();
                if !self.held(network).contains(&ip) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(FINISH_WITHIN, freed).await;
    }

    /// Waits (a bounded time) for every deletion started so far.
    pub(crate) async fn finish(&self) {
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(FINISH_WITHIN, all).await.is_err() {
            tracing::warn!("veth deletions still running at shutdown");
        }
    }
}
