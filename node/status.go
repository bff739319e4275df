package node

// What `dynakv status` and /cluster/status show, and the cluster figures INFO
// (info.go) and the metrics (metrics.go) report: this node's view of the cluster,
// read from membership, the coordinator, anti-entropy, hinted handoff and storage.

import (
	"github.com/dynakv/dynakv/record"
	"github.com/dynakv/dynakv/ring"
)

// Status is what `dynakv status` shows: this node's view of the cluster.
type Status struct {
	Node           string         `json:"node"`
	Partitions     int            `json:"partitions"`
	N              int            `json:"n"`
	R              int            `json:"r"`
	W              int            `json:"w"`
	Members        []MemberStatus `json:"members"`
	HintsPending   int64          `json:"hints_pending"`
	HintsByOwner   map[string]int `json:"hints_by_owner,omitempty"`
	HintsDelivered int64          `json:"hints_delivered"`
	ReadRepairs    int64          `json:"read_repairs"`
	Keys           int64          `json:"keys"`
	AAE            AAEStatus      `json:"aae"`

	// Zones are the ring's zones (ring.Ring.Zones order), only when it has more
	// than one: their members and the partition replicas they hold.
	Zones []ZoneStatus `json:"zones,omitempty"`
	// PartitionsNotSpread counts the partitions whose N replicas are in fewer than
	// min(N, zones) distinct zones. The ring's placement guarantees 0; anything
	// else is a bug.
	PartitionsNotSpread int `json:"partitions_not_spread"`
}

// AAEStatus is anti-entropy and partition handoff as this node sees them.
type AAEStatus struct {
	IntervalMS       int64 `json:"interval_ms"` // <= 0: this node runs no rounds
	Rounds           int64 `json:"rounds"`
	Exchanges        int64 `json:"exchanges"`
	KeysRepaired     int64 `json:"keys_repaired"`
	TombstonesPurged int64 `json:"tombstones_purged"`
	// Handoff: partitions held here that this node no longer owns, the records in
	// them, and the partitions handed off since start.
	HandoffPending     int64 `json:"handoff_partitions_pending"`
	HandoffKeysPending int64 `json:"handoff_keys_pending"`
	HandoffDone        int64 `json:"handoff_partitions_done"`
	// Partitions this node owns, with the age of their last exchange that found
	// or made them equal to another replica (-1: none since this node started).
	Partitions []PartitionRepair `json:"partitions"`
}

// PartitionRepair is one owned partition's repair age.
type PartitionRepair struct {
	Partition   int   `json:"partition"`
	Keys        int64 `json:"keys"`
	RepairAgeMS int64 `json:"repair_age_ms"`
}

// ZoneStatus is one zone of the ring as this node sees it.
type ZoneStatus struct {
	Zone         string `json:"zone"` // "": the members without a zone
	Members      int    `json:"members"`
	MembersAlive int    `json:"members_alive"`
	// Replicas is how many partition replicas the zone's members hold: the sum over
	// the partitions of how many of each one's N replicas are in the zone.
	// Partitions is how many partitions have at least one replica in the zone.
	Replicas   int `json:"replicas"`
	Partitions int `json:"partitions"`
}

// MemberStatus is one ring member as this node sees it.
type MemberStatus struct {
	Name         string `json:"name"`
	Zone         string `json:"zone,omitempty"`
	State        string `json:"state"`
	Alive        bool   `json:"alive"`
	RESPAddr     string `json:"resp_addr"`
	MemcacheAddr string `json:"memcache_addr"`
	HTTPAddr     string `json:"http_addr"`
	ClusterAddr  string `json:"cluster_addr"`
	GossipAddr   string `json:"gossip_addr"`
	// Primaries and Replicas count the partitions the member is first for, and
	// one of the N replicas of.
	Primaries int `json:"primaries"`
	Replicas  int `json:"replicas"`
}

// MembersAlive returns how many ring members this node sees alive, itself included.
func (n *Node) MembersAlive() int { return n.clusterStats().alive }

// Status returns this node's view of the cluster, hints counted per owner.
func (n *Node) Status() Status { return n.status(true) }

// status returns this node's view of the cluster; counting the hints per owner
// scans them, so DCLUSTER MEMBERS skips it.
func (n *Node) status(hintsByOwner bool) Status {
	cs := n.clusterStats()
	rg := n.ms.Ring()
	st := Status{Node: n.cfg.Name, Partitions: n.cfg.Partitions, N: cs.n, R: cs.r, W: cs.w,
		HintsPending: cs.hintsPending, HintsDelivered: cs.hintsDelivered, ReadRepairs: cs.readRepairs,
		Keys: n.store.Count()}
	primaries := rg.PrimaryCounts()
	replicas := map[string]int{}
	for p := range rg.Partitions() {
		for _, name := range rg.Replicas(p, cs.n) {
			replicas[name]++
		}
	}
	st.Zones, st.PartitionsNotSpread = n.zoneStatus(rg, cs.n)
	for _, m := range n.ms.Members() {
		st.Members = append(st.Members, MemberStatus{
			Name: m.Name, Zone: m.Zone, State: m.State.String(), Alive: m.Alive,
			RESPAddr: m.RESPAddr, MemcacheAddr: m.MemcacheAddr, HTTPAddr: m.HTTPAddr,
			ClusterAddr: m.ClusterAddr, GossipAddr: m.GossipAddr,
			Primaries: primaries[m.Name], Replicas: replicas[m.Name],
		})
	}
	st.AAE = n.aaeStatus(rg, cs.n)
	if owners, err := n.store.HintOwners(); hintsByOwner && err == nil && len(owners) > 0 {
		st.HintsByOwner = map[string]int{}
		for _, o := range owners {
			cnt := 0
			_ = n.store.ScanHints(o, nil, func([]byte, record.Record) bool { cnt++; return cnt < 1_000_000 })
			st.HintsByOwner[o] = cnt
		}
	}
	return st
}

// zoneStatus returns rg's zones with their members and the partition replicas
// they hold for replication factor nn, only when there is more than one zone, and
// the number of partitions whose replicas are in fewer than min(nn, zones)
// distinct zones. It costs Q*nn steps (1024*3 by default).
func (n *Node) zoneStatus(rg *ring.Ring, nn int) ([]ZoneStatus, int) {
	zones := rg.Zones()
	out := make([]ZoneStatus, len(zones))
	for i, z := range zones {
		out[i].Zone = z
	}
	for _, m := range rg.Members() {
		z, _ := rg.ZoneIndex(m.Name)
		zs := &out[z]
		zs.Members++
		if n.ms.Alive(m.Name) {
			zs.MembersAlive++
		}
	}
	want := min(nn, len(zones))
	notSpread := 0
	held := make([]int, len(zones)) // replicas of the partition in each zone
	for p := range rg.Partitions() {
		clear(held)
		for _, name := range rg.Replicas(p, nn) {
			z, _ := rg.ZoneIndex(name)
			held[z]++
		}
		distinct := 0
		for i, h := range held {
			if h > 0 {
				distinct++
				out[i].Replicas += h
				out[i].Partitions++
			}
		}
		if distinct < want {
			notSpread++
		}
	}
	if len(zones) < 2 {
		return nil, notSpread
	}
	return out, notSpread
}

// aaeStatus reports anti-entropy and handoff, with the repair age of each
// partition this node owns.
func (n *Node) aaeStatus(rg *ring.Ring, nn int) AAEStatus {
	am := n.aae.Metrics()
	st := AAEStatus{IntervalMS: n.cfg.AAEInterval.Milliseconds(), Rounds: am.Rounds, Exchanges: am.Exchanges,
		KeysRepaired: am.KeysRepaired, TombstonesPurged: am.TombstonesPurged,
		HandoffPending: am.HandoffPending, HandoffKeysPending: am.HandoffKeysPending, HandoffDone: am.PartitionsHanded}
	last := n.aae.LastSync()
	now := n.cfg.Now().UnixMilli()
	for p := range rg.Partitions() {
		if !rg.Owns(n.cfg.Name, p, nn) {
			continue
		}
		age := int64(-1)
		if last[p] > 0 {
			age = max(now-last[p], 0)
		}
		st.Partitions = append(st.Partitions, PartitionRepair{Partition: p, Keys: n.store.PartitionCount(p), RepairAgeMS: age})
	}
	return st
}

// clusterStats are the cluster figures INFO and the metrics report.
type clusterStats struct {
	members, alive, n, r, w                                int
	hintsPending, hintsDelivered, hintsStored, readRepairs int64
	readQuorumFailures, writeQuorumFailures                int64
}

func (n *Node) clusterStats() clusterStats {
	var cs clusterStats
	rg := n.ms.Ring()
	cs.members = rg.Len()
	for _, m := range rg.Members() {
		if n.ms.Alive(m.Name) {
			cs.alive++
		}
	}
	cs.n, cs.r, cs.w = n.quorum(cs.members)
	cs.hintsPending = n.store.HintCount()
	if n.handoff != nil {
		cs.hintsDelivered = n.handoff.Metrics().Delivered
	}
	cm := n.co.Metrics()
	cs.hintsStored, cs.readRepairs = cm.HintsStored, cm.ReadRepairs
	cs.readQuorumFailures, cs.writeQuorumFailures = cm.ReadQuorumFailures, cm.WriteQuorumFailures
	return cs
}
