package launch

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

var httpClient = &http.Client{Timeout: 2 * time.Second}

// Healthy returns a probe that succeeds once the node's GET /healthz on httpAddr
// answers 200.
func Healthy(httpAddr string) func() error {
	return func() error {
		resp, err := httpClient.Get("http://" + httpAddr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	}
}

// MembersAlive returns a probe that succeeds once the node on httpAddr sees
// exactly want members alive (its /cluster/status).
func MembersAlive(httpAddr string, want int) func() error {
	return func() error {
		resp, err := httpClient.Get("http://" + httpAddr + "/cluster/status")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var st struct {
			Members []struct {
				Alive bool `json:"alive"`
			} `json:"members"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
			return fmt.Errorf("cluster status: %w", err)
		}
		alive := 0
		for _, m := range st.Members {
			if m.Alive {
				alive++
			}
		}
		if alive != want {
			return fmt.Errorf("%d of %d members alive", alive, want)
		}
		return nil
	}
}
