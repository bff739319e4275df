package node

// What `dynakv status` and /cluster/status show, and the cluster figures INFO
// (info.go) and the metrics (metrics.go) report: this node's view of the cluster,
// read from membership, the coordinator, anti-entropy, hinted handoff and storage.

import (
	"github.com/dynakv/dynakv/ring"
	"github.com/dynakv/dynakv/vclock"
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

// MemberStatus is one ring member as this node sees it.
type MemberStatus struct {
	Name         string `json:"name"`
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
	for _, m := range n.ms.Members() {
		st.Members = append(st.Members, MemberStatus{
			Name: m.Name, State: m.State.String(), Alive: m.Alive,
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
			_ = n.store.ScanHints(o, nil, func([]byte, vclock.Set) bool { cnt++; return cnt < 1_000_000 })
			st.HintsByOwner[o] = cnt
		}
	}
	return st
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
