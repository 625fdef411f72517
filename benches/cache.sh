#!/usr/bin/env bash
# Binary caches, measured. Realizes TARGET (default python3.11-x86_64) cold into an empty store,
# then into empty stores from a file cache, from `spy serve` (first request packs, second is warm)
# and from nginx WebDAV (if installed), and prints each as a ratio of the cold build of the same
# run; plus `spy push` (file and HTTP PUT) and `spy verify` throughput, and every command's peak RSS.
#
#   benches/cache.sh [TARGET]        (uses the sources already in $SPY_STORE or store/)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-python3.11-x86_64}
main_store=${SPY_STORE:-$PWD/store}
cargo build --release -q
spy=$PWD/target/release/spy
work=$(mktemp -d "$main_store/.spy/bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A store holding only the source cache (hard links into the main store's).
new_store() {
  mkdir -p "$1/.spy/sources"
  cp -al "$main_store/.spy/sources/." "$1/.spy/sources/" 2>/dev/null || cp -a "$main_store/.spy/sources/." "$1/.spy/sources/"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# timed LABEL CMD...: runs CMD under /usr/bin/time; sets $secs and $rss_mib, keeps stderr in $work/LABEL.err.
timed() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$label.time" "$@" > "$work/$label.out" 2> "$work/$label.err"
  read -r secs kib < "$work/$label.time"
  rss_mib=$(awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }')
}
row() { printf "%-44s %9s s %10s %12s MiB\n" "$1" "$2" "$3" "$4"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a / b }'; }
mbps() { awk -v mb="$1" -v s="$2" 'BEGIN { printf "%.1f MB/s", mb / s }'; }

echo "binary cache benchmark: $target, $(nproc) cores, $(date -u +%FT%TZ)"
"$spy" key generate bench-1 --out-dir "$work" > /dev/null 2>&1
key=$work/bench-1.secret
pub=$(cat "$work/bench-1.public")
subst=(--trusted-public-key "$pub" --no-out-link)

new_store "$work/a"
timed cold "$spy" --store "$work/a" realize -j"$(nproc)" --no-substitute --no-out-link "$target"
cold=$secs
printf "%-44s %11s %10s %16s\n" "step" "wall" "vs cold" "peak RSS"
row "cold build (empty store, sources cached)" "$cold" "1" "$rss_mib"

timed push-file "$spy" --store "$work/a" push --to "file://$work/cache" --sign "$key" "$target"
mb=$(grep -o '([0-9.]* MB packed' "$work/push-file.err" | grep -o '[0-9.]*' | head -n1)
row "push closure to file:// ($mb MB, $(mbps "$mb" "$secs"))" "$secs" "-" "$rss_mib"

timed verify "$spy" --store "$work/a" verify
row "verify store A ($mb MB, $(mbps "$mb" "$secs"))" "$secs" "-" "$rss_mib"

timed file "$spy" --store "$work/b" realize "${subst[@]}" --substituter "file://$work/cache" "$target"
grep -q "spy: built " "$work/file.err" && { echo "unexpected build from the file cache"; cat "$work/file.err"; exit 1; }
row "realize from file:// cache" "$secs" "$(ratio "$secs" "$cold")" "$rss_mib"

port=$(free_port)
"$spy" --store "$work/a" serve --addr "127.0.0.1:$port" --sign "$key" --cache-dir "$work/serve" 2> "$work/serve.err" &
pids+=($!)
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
timed serve-cold "$spy" --store "$work/c" realize "${subst[@]}" --substituter "http://127.0.0.1:$port/" "$target"
row "realize from spy serve (server packs first)" "$secs" "$(ratio "$secs" "$cold")" "$rss_mib"
timed serve-warm "$spy" --store "$work/d" realize "${subst[@]}" --substituter "http://127.0.0.1:$port/" "$target"
row "realize from spy serve (already packed)" "$secs" "$(ratio "$secs" "$cold")" "$rss_mib"
serve_rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/${pids[-1]}/status")
row "spy serve itself (peak so far)" "-" "-" "$serve_rss"

nginx=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
if [ -n "$nginx" ]; then
  nport=$(free_port)
  mkdir -p "$work/nginx/www"
  n=$work/nginx
  cat > "$n/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $n/nginx.pid; error_log $n/error.log;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $n/body; proxy_temp_path $n/proxy; fastcgi_temp_path $n/fcgi;
  uwsgi_temp_path $n/uwsgi; scgi_temp_path $n/scgi;
  server { listen 127.0.0.1:$nport; root $n/www; client_max_body_size 0;
    location / { dav_methods PUT; create_full_put_path on; } } }
CONF
  "$nginx" -p "$n" -c "$n/nginx.conf" -e "$n/error.log" &
  pids+=($!)
  for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$nport") 2>/dev/null && break; sleep 0.1; done
  timed push-http "$spy" --store "$work/a" push --to "http://127.0.0.1:$nport/c/" --sign "$key" "$target"
  row "push closure to nginx WebDAV ($mb MB, $(mbps "$mb" "$secs"))" "$secs" "-" "$rss_mib"
  timed nginx "$spy" --store "$work/e" realize "${subst[@]}" --substituter "http://127.0.0.1:$nport/c/" "$target"
  row "realize from nginx" "$secs" "$(ratio "$secs" "$cold")" "$rss_mib"
fi
a=$("$spy" --store "$work/a" path "$target"); b=$(cat "$work/serve-cold.out")
cmp -s "$a/bin/$target" "$b/bin/$target" && echo "substituted binaries are identical to the cold build's: $(sha256sum "$a/bin/$target" | cut -c1-16)"
