"""Reads a valgrind memcheck log and prints the errors whose stack passes
through fastlstm's extension; exits 1 if there is any.  (The interpreter
and the dynamic loader report errors of their own under memcheck that have
nothing to do with the extension; they are counted, not failed on.)"""

import re
import sys

text = open(sys.argv[1]).read()
blocks = re.split(r"\n==\d+== \n", text)
ours, others = [], 0
for b in blocks:
    if not re.search(
        r"(Invalid (read|write|free)|uninitialised|Mismatched|overlap|"
        r"Argument .* of function)",
        b,
    ):
        continue
    if "fastlstm" in b or "kernels.cpython" in b:
        ours.append(b)
    else:
        others += 1
for b in ours:
    print(b, end="\n\n")
print(
    f"valgrind: {len(ours)} error(s) in fastlstm's extension; {others} elsewhere "
    "(interpreter, loader) ignored"
)
sys.exit(1 if ours else 0)
