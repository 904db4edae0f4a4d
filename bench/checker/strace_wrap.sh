#!/bin/bash
# bench/checker/strace_wrap.sh OUT COMMAND...: COMMAND under `strace -f -c -o OUT`, with SIGTERM and
# SIGINT passed on to COMMAND itself (by its pid; strace would not forward them), so that
#   bench/checker/run --checker-wrapper "bench/checker/strace_wrap.sh /tmp/syscalls.txt" ...
# stops the checker as usual and leaves the system-call counts of the whole run in OUT.
out=$1
shift
strace -f -c -o "$out" "$@" &
tracer=$!
trap 'kill -TERM $(cat /proc/$tracer/task/$tracer/children) 2>/dev/null' TERM INT
wait $tracer  # returns early when a trapped signal arrives
wait $tracer
