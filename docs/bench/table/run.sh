#!/bin/bash
# One side-by-side run of the single-budget recurrence table (docs/benchmarks.md): start every
# command at once (one process each), wait for all, and record the commands, the UTC times and the
# load average at the start and the end in docs/bench/table/NAME.log.md (each command's output in
# NAME.K.out). The caller takes the lock:  flock /work/timing.lock docs/bench/table/run.sh NAME 'cmd' 'cmd'
set -u
name=$1; shift
dir=docs/bench/table
log=$dir/$name.log.md
{ echo "# $name"; echo; echo "start: $(date -u +%FT%TZ), /proc/loadavg: $(cat /proc/loadavg)"; echo
  echo "commands (started together, PYTHONPATH=src, under one flock /work/timing.lock):"; echo
  for c in "$@"; do echo "    $c"; done; echo; } > "$log"
pids=(); i=0
for c in "$@"; do bash -c "$c" > "$dir/$name.$i.out" 2>&1 & pids+=($!); i=$((i+1)); done
codes=()
for p in "${pids[@]}"; do wait "$p"; codes+=($?); done
echo "end: $(date -u +%FT%TZ), /proc/loadavg: $(cat /proc/loadavg), exit codes: ${codes[*]}" >> "$log"
