//! Virtual IPs for services that declare no address, from 240.240.0.0/16, the reserved
//! class-E range Istio auto-allocates from (never routed off the host).
//!
//! Istio has had two allocators. The first (istiod before 1.23) hashed `namespace/host`
//! with FNV-1a into the range and resolved collisions by double hashing, over services
//! sorted by creation time: deterministic, but a collision's loser moves when the winner
//! goes away. The second (`ipallocate`, 1.23+) hands out the next free address and writes
//! it into the ServiceEntry's status, so it never moves, but depends on the order events
//! arrived in. Weft takes both halves: an address once given is kept for as long as the
//! service lives (the allocator is state the control plane keeps, and can persist), and
//! a new service's address is its FNV-1a slot with double hashing, placed in (creation
//! time, `namespace/host`) order, so a restart with no saved state gives the same
//! addresses unless an earlier collision's winner has since been deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::sources::Draft;

/// The range auto-allocated addresses come from.
pub const VIP_RANGE: &str = "240.240.0.0/16";

/// 240.240.0.1 ..= 240.240.254.254: no `.0` or `.255` host part, which some stacks treat
/// specially.
const SLOTS: u32 = 254 * 255;
/// The largest prime below `SLOTS`, for the second hash.
const PRIME: u32 = 64_763;

/// The addresses given out so far, by `namespace/host`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipAllocator {
    assigned: BTreeMap<String, Ipv4Addr>,
}

impl VipAllocator {
    /// The address given to `host` of `namespace`, if any.
    pub fn address_of(&self, namespace: &str, host: &str) -> Option<Ipv4Addr> {
        self.assigned.get(&format!("{namespace}/{host}")).copied()
    }

    /// How many addresses are in use.
    pub fn len(&self) -> usize {
        self.assigned.len()
    }

    pub fn is_empty(&self) -> bool {
        self.assigned.is_empty()
    }

    /// Gives an address to every draft that wants one: its previous address if it had
    /// one, else a free slot. Addresses of services that are gone are released.
    pub(crate) fn assign(&mut self, drafts: &mut [Draft]) {
        let mut wanting: Vec<(Option<i128>, String, usize)> = drafts
            .iter()
            .enumerate()
            .filter(|(_, d)| d.wants_vip)
            .map(|(i, d)| (d.created, key(d), i))
            .collect();
        wanting.sort();
        let mut kept = BTreeMap::new();
        let mut taken = BTreeSet::new();
        for (_, k, _) in &wanting {
            if let Some(ip) = self.assigned.get(k)
                && let Some(slot) = slot_of(*ip)
                && taken.insert(slot)
            {
                kept.insert(k.clone(), *ip);
            }
        }
        for (_, k, _) in &wanting {
            if kept.contains_key(k) {
                continue;
            }
            if let Some(slot) = free_slot(k, &taken) {
                taken.insert(slot);
                kept.insert(k.clone(), address(slot));
            }
        }
        self.assigned = kept;
        for (_, k, i) in wanting {
            if let (Some(ip), Some(draft)) = (self.assigned.get(&k), drafts.get_mut(i)) {
                draft.service.addresses = vec![IpNet::from(IpAddr::V4(*ip))];
            }
        }
    }
}

fn key(d: &Draft) -> String {
    format!("{}/{}", d.service.namespace, d.service.host)
}

/// The first free slot on `key`'s probe sequence: its hash, then steps of a second hash.
fn free_slot(key: &str, taken: &BTreeSet<u32>) -> Option<u32> {
    let h = fnv1a(key.as_bytes());
    let step = PRIME - h % PRIME;
    (0..SLOTS)
        .map(|i| {
            ((u64::from(h % SLOTS) + u64::from(i) * u64::from(step)) % u64::from(SLOTS)) as u32
        })
        .find(|s| !taken.contains(s))
        // The step need not be coprime with the range: finish with a plain scan.
        .or_else(|| (0..SLOTS).find(|s| !taken.contains(s)))
}

fn address(slot: u32) -> Ipv4Addr {
    let third = u8::try_from(slot / 254).unwrap_or(u8::MAX);
    let fourth = u8::try_from(slot % 254 + 1).unwrap_or(u8::MAX);
    Ipv4Addr::new(240, 240, third, fourth)
}

/// The slot of an address, when it is one this allocator gives out.
fn slot_of(ip: Ipv4Addr) -> Option<u32> {
    let [a, b, third, fourth] = ip.octets();
    let valid = a == 240 && b == 240 && third < 255 && (1..=254).contains(&fourth);
    valid.then(|| u32::from(third) * 254 + u32::from(fourth) - 1)
}

/// 32-bit FNV-1a, the hash Istio's first allocator used.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
pub(crate) fn slot_for_test(key: &str) -> u32 {
    fnv1a(key.as_bytes()) % SLOTS
}
