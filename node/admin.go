package node

// The operator surface besides INFO (info.go) and the metrics (metrics.go): the
// admin HTTP endpoints and resp's operator commands (DPREFLIST, DCLUSTER). What the
// token guards (README "Deploying safely" tells operators):
//
//   - The endpoints that change the cluster (POST /cluster/remove, POST
//     /cluster/leave) and /debug/pprof (its cmdline page shows the process's flags,
//     secrets included, and profiles cost CPU) need the header "Authorization:
//     Bearer <token>", the token being AdminToken(secret). /metrics, /healthz and
//     /cluster/status (status.go) stay open: they change nothing and reveal no
//     secret. A header is required even with the empty secret, so that a web page a
//     browser visits cannot make it POST to the node (no header without CORS).

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.met.reg, promhttp.HandlerOpts{Registry: n.met.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/cluster/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(n.Status())
	})
	token := AdminToken(n.cfg.Secret)
	admin := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, requireToken(token, h)) }
	admin("/cluster/remove", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST /cluster/remove?name=NODE", http.StatusMethodNotAllowed)
			return
		}
		if err := n.ms.Remove(r.URL.Query().Get("name")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "OK")
	})
	admin("/cluster/leave", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST /cluster/leave", http.StatusMethodNotAllowed)
			return
		}
		if err := n.Leave(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "OK")
	})
	admin("/debug/pprof/", pprof.Index)
	admin("/debug/pprof/cmdline", pprof.Cmdline)
	admin("/debug/pprof/profile", pprof.Profile)
	admin("/debug/pprof/symbol", pprof.Symbol)
	admin("/debug/pprof/trace", pprof.Trace)
	return mux
}

// adminTokenLabel is the HMAC message the admin token is derived with, so that it
// is not the secret itself and not any MAC the transport sends.
const adminTokenLabel = "dynakv-admin-v1"

// AdminToken returns the bearer token of the admin HTTP endpoints for a cluster
// secret: hex(HMAC-SHA256(secret, "dynakv-admin-v1")). `dynakv admin token`
// prints it.
func AdminToken(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(adminTokenLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// requireToken serves h only to requests carrying the admin token.
func requireToken(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dynakv admin"`)
			http.Error(w, "missing or wrong admin token: send 'Authorization: Bearer <token>' ("+
				"'dynakv admin token' prints it from the cluster secret)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// clusterAdmin serves resp's operator commands (DPREFLIST, DCLUSTER).
type clusterAdmin struct{ n *Node }

func (a clusterAdmin) PreferenceList(key []byte) []string { return slices.Clone(a.n.replicas(key)) }

// PreferenceListZones returns what PreferenceList does with the replicas' zones,
// read from one ring so that the two agree.
func (a clusterAdmin) PreferenceListZones(key []byte) (names, zones []string) {
	rg := a.n.ms.Ring()
	nn, _, _ := a.n.quorum(rg.Len())
	names = slices.Clone(rg.Replicas(rg.Partition(key), nn))
	zones = make([]string, len(names))
	for i, name := range names {
		zones[i], _ = rg.Zone(name)
	}
	return names, zones
}

func (a clusterAdmin) Members() []string {
	st := a.n.status(false)
	out := make([]string, 0, len(st.Members))
	for _, m := range st.Members {
		alive := "dead"
		if m.Alive {
			alive = "alive"
		}
		line := fmt.Sprintf("%s %s %s resp=%s memcache=%s http=%s primaries=%d replicas=%d",
			m.Name, alive, m.State, m.RESPAddr, m.MemcacheAddr, m.HTTPAddr, m.Primaries, m.Replicas)
		if m.Zone != "" { // a zone has no spaces (cluster.CheckZone)
			line += " zone=" + m.Zone
		}
		out = append(out, line)
	}
	return out
}

func (a clusterAdmin) Remove(name string) error { return a.n.ms.Remove(name) }

func (a clusterAdmin) Leave() error { return a.n.Leave() }
