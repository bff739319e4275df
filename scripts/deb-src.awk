# Reads deb822 .sources files and one-line .list files; prints, for every "deb" stanza
# whose URI/suite pairs are not all already present as deb-src, a deb-src stanza.
function flush(   n, i, j, us, ss, typ) {
  if (typ_ != "") {
    nu = split(uris_, us, " "); ns = split(suites_, ss, " ")
    if (typ_ ~ /(^| )deb-src( |$)/) for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) have[us[i] "|" ss[j]] = 1
    if (typ_ ~ /(^| )deb( |$)/ && enabled_ != "no") { k++; U[k] = uris_; S[k] = suites_; C[k] = comps_; G[k] = signed_ }
  }
  typ_ = uris_ = suites_ = comps_ = signed_ = enabled_ = ""
}
FNR == 1 { flush() }
FILENAME ~ /\.list$/ {
  sub(/#.*/, ""); if ($0 ~ /^[ \t]*$/) next
  t = $1; line = $0; sub(/^[ \t]*[a-z-]+[ \t]+/, "", line)
  opts = ""; if (line ~ /^\[/) { opts = line; sub(/\].*/, "", opts); sub(/^\[/, "", opts); sub(/^[^]]*\][ \t]*/, "", line) }
  n = split(line, f, /[ \t]+/); comps = ""; for (i = 3; i <= n; i++) comps = comps (comps ? " " : "") f[i]
  typ_ = t; uris_ = f[1]; suites_ = f[2]; comps_ = comps
  if (match(opts, /signed-by=[^ ]+/)) signed_ = substr(opts, RSTART + 10, RLENGTH - 10)
  flush(); next
}
/^[ \t]*#/ { next }
/^[ \t]*$/ { flush(); next }
{
  key = tolower($1); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
  if (key == "types:") typ_ = val; else if (key == "uris:") uris_ = val
  else if (key == "suites:") suites_ = val; else if (key == "components:") comps_ = val
  else if (key == "signed-by:") signed_ = val; else if (key == "enabled:") enabled_ = tolower(val)
}
END {
  flush()
  for (i = 1; i <= k; i++) {
    nu = split(U[i], us, " "); ns = split(S[i], ss, " "); missing = ""
    for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++) if (!((us[a] "|" ss[b]) in have)) missing = 1
    if (!missing) continue
    printf "%sTypes: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n", (out++ ? "\n" : ""), U[i], S[i], C[i]
    if (G[i] != "") printf "Signed-By: %s\n", G[i]
  }
}
