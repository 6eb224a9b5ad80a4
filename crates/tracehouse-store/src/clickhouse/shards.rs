//! Where a span row goes on a cluster: straight to its shard's local table.
//!
//! An insert into a `Distributed` table is parsed on the node that receives it, split by the
//! sharding key and forwarded, so every row is decoded twice and the receiving node does the
//! splitting for every shard. Measured on a 2-shard cluster that cost 45% more ClickHouse CPU
//! per span than one server, which made the cluster slower than the single node it should beat.
//! Writing each row to its shard's `span_versions_local` skips the forwarding; the same
//! materialized views run there as when `Distributed` delivers the rows.
//!
//! Rows must land where `Distributed` would put them, since readers and deletes find a trace's
//! older rows there, so the shard is chosen the way ClickHouse chooses it: `cityHash64(trace_id)`
//! modulo the sum of the shards' weights, each shard owning `weight` consecutive slots in
//! `shard_num` order.

use serde::Deserialize;

use super::ClickHouseError;
use super::client::{Client, string_literal};

/// One shard's place in the slot ring and the node that holds it.
#[derive(Clone)]
struct Shard {
    /// `shard_num` in `system.clusters`.
    number: u32,
    client: Client,
}

/// Routes rows to shards by trace id, as the cluster's `Distributed` tables do.
#[derive(Clone)]
pub(crate) struct ShardRouter {
    shards: Vec<Shard>,
    /// For each slot, the index in `shards` that owns it.
    slots: Vec<usize>,
}

/// Why rows go through the `Distributed` table instead (logged once at start).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoDirectRoute {
    /// A shard has more than one replica: `Distributed` decides which replicas get the rows.
    Replicas { shard: u32 },
    /// No configured node is this shard's (the store URL lists fewer hosts than shards).
    NoNodeFor { shard: u32 },
    /// Two configured nodes say they hold the same shard.
    SharedShard { shard: u32 },
    /// The cluster has no shard with a non-zero weight.
    Empty,
}

impl std::fmt::Display for NoDirectRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoDirectRoute::Replicas { shard } => write!(f, "shard {shard} has replicas"),
            NoDirectRoute::NoNodeFor { shard } => {
                write!(f, "no host in the store URL holds shard {shard}")
            }
            NoDirectRoute::SharedShard { shard } => {
                write!(f, "two hosts in the store URL hold shard {shard}")
            }
            NoDirectRoute::Empty => write!(f, "the cluster has no shard with a weight"),
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
struct ClusterShard {
    shard_num: u32,
    shard_weight: u32,
    replicas: u64,
}

#[derive(Deserialize)]
struct LocalShard {
    shard_num: u32,
}

impl ShardRouter {
    /// Learns the cluster's shards and which of `nodes` holds each. `Ok(Err(_))` says why rows
    /// must go through `Distributed` (a layout this router does not reproduce).
    pub(crate) async fn discover(
        nodes: &[Client],
        cluster: &str,
    ) -> Result<Result<Self, NoDirectRoute>, ClickHouseError> {
        let Some(first) = nodes.first() else {
            return Ok(Err(NoDirectRoute::Empty));
        };
        let cluster = string_literal(cluster);
        let layout: Vec<ClusterShard> = first
            .rows(&format!(
                "SELECT shard_num, any(shard_weight) AS shard_weight, count() AS replicas \
                 FROM system.clusters WHERE cluster = {cluster} \
                 GROUP BY shard_num ORDER BY shard_num"
            ))
            .await?;
        let mut holders: Vec<(u32, Client)> = Vec::new();
        for node in nodes {
            let local: Vec<LocalShard> = node
                .rows(&format!(
                    "SELECT shard_num FROM system.clusters \
                     WHERE cluster = {cluster} AND is_local = 1"
                ))
                .await?;
            for shard in local {
                holders.push((shard.shard_num, node.clone()));
            }
        }
        Ok(Self::from_layout(&layout, holders))
    }

    fn from_layout(
        layout: &[ClusterShard],
        holders: Vec<(u32, Client)>,
    ) -> Result<Self, NoDirectRoute> {
        let mut shards = Vec::new();
        let mut slots = Vec::new();
        for entry in layout {
            if entry.replicas > 1 {
                return Err(NoDirectRoute::Replicas {
                    shard: entry.shard_num,
                });
            }
            let mut held = holders.iter().filter(|(num, _)| *num == entry.shard_num);
            let Some((_, client)) = held.next() else {
                return Err(NoDirectRoute::NoNodeFor {
                    shard: entry.shard_num,
                });
            };
            if held.next().is_some() {
                return Err(NoDirectRoute::SharedShard {
                    shard: entry.shard_num,
                });
            }
            // A zero-weight shard takes no inserts through Distributed either.
            for _ in 0..entry.shard_weight {
                slots.push(shards.len());
            }
            shards.push(Shard {
                number: entry.shard_num,
                client: client.clone(),
            });
        }
        if slots.is_empty() {
            return Err(NoDirectRoute::Empty);
        }
        Ok(Self { shards, slots })
    }

    /// How many shards rows are spread over.
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The index (into [`ShardRouter::client`]) of the shard holding `trace_id`'s rows.
    pub(crate) fn shard_of(&self, trace_id: &str) -> usize {
        let hash = ch_cityhash102::cityhash64(trace_id.as_bytes());
        // `slots` is never empty (checked when built); the modulo keeps the index in range.
        self.slots[(hash % self.slots.len() as u64) as usize]
    }

    /// The node to insert shard `index`'s rows into.
    pub(crate) fn client(&self, index: usize) -> &Client {
        &self.shards[index].client
    }

    /// Which node holds which shard, for the log.
    pub(crate) fn describe(&self) -> String {
        self.shards
            .iter()
            .map(|shard| format!("shard {} at {}", shard.number, shard.client.base()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn node(port: u16) -> Client {
        Client::new(
            &format!("http://127.0.0.1:{port}"),
            "db",
            "default",
            None,
            Duration::from_secs(1),
        )
        .unwrap()
    }

    fn shard(shard_num: u32, shard_weight: u32, replicas: u64) -> ClusterShard {
        ClusterShard {
            shard_num,
            shard_weight,
            replicas,
        }
    }

    #[test]
    fn hashes_trace_ids_as_clickhouse_city_hash_64() {
        // Values from `SELECT cityHash64('abc')` etc. on ClickHouse 18.16.
        assert_eq!(ch_cityhash102::cityhash64(b"abc"), 4220206313085259313);
        assert_eq!(ch_cityhash102::cityhash64(b""), 11160318154034397263);
        assert_eq!(
            ch_cityhash102::cityhash64(b"0123456789abcdef0123456789abcdef"),
            1759797222395115254
        );
    }

    #[test]
    fn weights_give_each_shard_consecutive_slots_in_shard_order() {
        let router = ShardRouter::from_layout(
            &[shard(1, 1, 1), shard(2, 3, 1)],
            vec![(2, node(2)), (1, node(1))],
        )
        .unwrap();
        assert_eq!(router.slots, vec![0, 1, 1, 1]);
        assert_eq!(
            router.describe(),
            "shard 1 at http://127.0.0.1:1, shard 2 at http://127.0.0.1:2"
        );
        // cityHash64('abc') % 4 == 1, a slot of shard 2.
        assert_eq!(router.shard_of("abc"), 1);
        assert_eq!(router.client(1).base(), "http://127.0.0.1:2");
    }

    #[test]
    fn layouts_it_cannot_reproduce_fall_back_to_distributed() {
        assert_eq!(
            ShardRouter::from_layout(&[shard(1, 1, 2)], vec![(1, node(1))]).err(),
            Some(NoDirectRoute::Replicas { shard: 1 })
        );
        assert_eq!(
            ShardRouter::from_layout(&[shard(1, 1, 1), shard(2, 1, 1)], vec![(1, node(1))]).err(),
            Some(NoDirectRoute::NoNodeFor { shard: 2 })
        );
        assert_eq!(
            ShardRouter::from_layout(&[shard(1, 1, 1)], vec![(1, node(1)), (1, node(2))]).err(),
            Some(NoDirectRoute::SharedShard { shard: 1 })
        );
        assert_eq!(
            ShardRouter::from_layout(&[shard(1, 0, 1)], vec![(1, node(1))]).err(),
            Some(NoDirectRoute::Empty)
        );
    }
}
