#!/bin/sh
# Runs kefu-relay with its `serve` command under $KEFU_BENCH_WRAP, for profiling a
# benchmark run: pass this file as `kefu-bench --relay-bin`. Other commands (agent add)
# run plainly. The relay is $KEFU_RELAY, or target/release/kefu-relay.
#
#   KEFU_BENCH_WRAP="valgrind --tool=callgrind --callgrind-out-file=/tmp/relay.callgrind" \
#     target/release/kefu-bench messages --server relay --relay-bin bench/relay-wrapper.sh ...
#   KEFU_BENCH_WRAP="strace -f -c -o /tmp/relay.strace" target/release/kefu-bench ...
relay="${KEFU_RELAY:-$(dirname "$0")/../target/release/kefu-relay}"
case " $* " in
  *" serve "*) exec $KEFU_BENCH_WRAP "$relay" "$@" ;;
  *) exec "$relay" "$@" ;;
esac
