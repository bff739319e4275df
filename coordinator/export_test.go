package coordinator

// SetReadObserver has c tell fn of every quorum read with other replicas that
// reached its R: the owners whose answers counted toward it and the key's N
// replicas in the ring the read planned on. The simulation checks per-key
// quorums with it. Set it before c serves requests.
func SetReadObserver(c *Coordinator, fn func(key []byte, r int, acked, replicas []string)) {
	c.readObserver = fn
}
