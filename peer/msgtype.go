package peer

import "strconv"

// MsgType is the type of an internode request, the typ of Caller.Call and of the
// transport's frames. Every type of the protocol is declared here and nowhere
// else; a number, once used, is never given to another message (a node of another
// version may still send it).
type MsgType uint8

// The replica protocol (coordinator/): reads and writes of one key's replica,
// and the keyspace commands.
const (
	MsgRead       MsgType = 1 // ReadRequest -> record reply (AppendRecordReply)
	MsgWrite      MsgType = 2 // WriteRequest -> empty reply, once durable
	MsgScan       MsgType = 3 // ScanRequest -> ScanReply
	MsgCount      MsgType = 4 // CountRequest -> count reply (AppendCountReply)
	MsgFlush      MsgType = 5 // empty -> empty, once the replica dropped everything
	MsgWriteBatch MsgType = 6 // write batch (AppendWriteBatch) -> batch reply (AppendBatchReply)
	MsgReadBatch  MsgType = 7 // read batch (AppendReadBatch) -> per read a record or an error (AppendReadBatchReply)
)

// Proxy forwarding (proxy/): a client operation sent to a node in its key's
// preference list. The body is proxy's Op codec; the reply its Result codec.
const MsgForward MsgType = 16

// Anti-entropy, partition handoff and tombstone purge (repair/).
const (
	MsgRoots    MsgType = 32 // RootsRequest -> partitions whose roots differ (AppendInts)
	MsgBranches MsgType = 33 // one partition (AppendInts) -> its branch hashes (AppendHashes)
	MsgLeaves   MsgType = 34 // PartList of branches -> their leaf hashes (AppendHashes)
	MsgKeys     MsgType = 35 // PartList of segments -> (key, item hash) pairs (AppendKeyHashes)
	MsgFetch    MsgType = 36 // keys (AppendKeys) -> (key, record) pairs (AppendKeyRecords)
	MsgPush     MsgType = 37 // (key, record) pairs -> empty, once merged durably
	MsgPurge    MsgType = 38 // (key, record) pairs -> empty, deleted where still exactly that
	MsgHolds    MsgType = 39 // (key, record) pairs -> per key, what the node holds (AppendHolds)
)

// Eviction (repair's evictor, issue 18).
const MsgAccess MsgType = 40 // AccessRequest -> per hash, the access word (AppendAccessWords)

var msgNames = map[MsgType]string{
	MsgRead: "read", MsgWrite: "write", MsgScan: "scan", MsgCount: "count", MsgFlush: "flush",
	MsgWriteBatch: "write-batch", MsgReadBatch: "read-batch",
	MsgForward: "forward",
	MsgRoots:   "roots", MsgBranches: "branches", MsgLeaves: "leaves", MsgKeys: "keys",
	MsgFetch: "fetch", MsgPush: "push", MsgPurge: "purge", MsgHolds: "holds",
	MsgAccess: "access",
}

// String returns the type's name, or "type N" for a number the protocol does not
// know.
func (t MsgType) String() string {
	if s, ok := msgNames[t]; ok {
		return s
	}
	return "type " + strconv.Itoa(int(t))
}
