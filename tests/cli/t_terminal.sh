#!/usr/bin/env bash
# What the terminal shows without other tools: shell completion (loaded by bash, asked as bash
# asks), the curves of a sweep drawn in braille, sparklines of each metric in compare.
. "$(dirname "$0")/lib.sh"

cat > expt.yaml <<'YAML'
name: curves
command: python3 t.py
args: auto
params: {lr: 0.1}
sweep: {lr: [0.1, 0.5]}
variants:
  quick: {params: {lr: 0.2}}
  big: {params: {lr: 0.3}}
YAML
printf 'import sys, math\nlr = float(sys.argv[2])\nfor s in range(20):\n    print(f"expt: loss={math.exp(-lr*s):.6f} step={s}")\n' > t.py
expect_code "a small sweep" 0 "$EXPT" run $RUN_BACKEND -q

# Completion: bash loads the script; candidates are what bash would offer.
expect_code "completion bash" 0 "$EXPT" completion bash
complete_words() { # words typed after "expt" (the last one is being completed)
	PATH="$(dirname "$EXPT"):$PATH" bash -c '
		source <("$0" completion bash) || exit 9
		COMP_WORDS=(expt "$@"); COMP_CWORD=$#; _expt; printf "%s\n" "${COMPREPLY[@]}"' \
		"$EXPT" "$@"
}
equals "commands" "$(complete_words p | sort | tr '\n' ' ')" "plan plot ps "
equals "run ids and experiments for logs" "$(complete_words logs curves | sort | tr '\n' ' ')" "curves curves-1 curves-2 "
equals "options from --help" "$(complete_words compare --so | tr '\n' ' ')" "--sort "
equals "variants of ./expt.yaml" "$(complete_words run -v "" | sort | tr '\n' ' ')" "big quick "
equals "output formats" "$(complete_words ps -o j | tr '\n' ' ')" "json "
not_contains "the hidden helper is not offered" "$(complete_words _)" "__complete"
expect_code "zsh and fish scripts" 0 sh -c "\"$EXPT\" completion zsh | grep -q compdef && \"$EXPT\" completion fish | grep -q 'complete -c expt'"
expect_code "an unknown shell" 2 "$EXPT" completion tcsh

# expt plot: braille curves, the range, a legend per run.
expect_code "plot" 0 "$EXPT" plot curves loss --by lr --width 40 --height 8
contains "the metric's name" "$out" "loss"
contains "braille dots" "$out" "⠉"
contains "the top of the range" "$out" "1 ┤"
contains "a legend line per run (by lr)" "$out" "lr=0.1  (last"
contains "the other run" "$out" "lr=0.5  (last"
equals "height rows" "$(echo "$out" | grep -c '┤')" "8"
expect_code "plot of a metric nobody logged" 3 "$EXPT" plot curves nope
contains "says so" "$out" "no run of curves has points of 'nope'"

# compare: each metric's history as a sparkline (falling loss: high bar first, low bar last).
expect_code "compare --spark" 0 "$EXPT" compare curves --spark
contains "a falling sparkline" "$out" "█"
contains "ending low" "$out" "▁"
expect_code "compare into a pipe" 0 "$EXPT" compare curves
not_contains "no sparklines there" "$out" "█"

finish
