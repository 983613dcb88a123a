#!/bin/bash
# Runs every benchmark script in turn (`make bench`). Each prints its own
# medians and ratios against peers measured in the same run; none asserts a
# time. Exits non-zero only if a benchmark could not run.
set -uo pipefail
cd "$(dirname "$0")/../.."
tests/deps.sh || exit 1
status=0
for b in generator unpack store connector e2e scale; do
	echo "=== bench: $b"
	tests/bench/$b.sh || { echo "=== bench $b: could not run"; status=1; }
done
exit $status
