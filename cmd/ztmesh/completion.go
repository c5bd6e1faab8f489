package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
)

func completion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("completion", "bash|zsh|fish",
		"Print a shell completion script for ztmesh's commands and their flags.\n"+
			"  bash: source <(ztmesh completion bash)     (or put it in /etc/bash_completion.d/ztmesh)\n"+
			"  zsh:  source <(ztmesh completion zsh)\n"+
			"  fish: ztmesh completion fish > ~/.config/fish/completions/ztmesh.fish", stdout)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: completion needs one shell: bash, zsh or fish", errUsage)
	}
	switch pos[0] {
	case "bash":
		writeBash(stdout)
	case "zsh":
		fmt.Fprintln(stdout, "autoload -U +X bashcompinit && bashcompinit")
		writeBash(stdout)
	case "fish":
		writeFish(stdout)
	default:
		return fmt.Errorf("%w: no completion for shell %q: bash, zsh or fish", errUsage, pos[0])
	}
	return nil
}

// commandFlags asks a command for its --help and reads its flags from it,
// so the completion never falls behind the commands.
func commandFlags(c command) []string {
	var out bytes.Buffer
	_ = c.run([]string{"--help"}, &out, io.Discard)
	var flags []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		// Flags are listed indented by two spaces (cli.PrintFlags); a
		// description line may also start with a flag's name.
		if line := sc.Text(); strings.HasPrefix(line, "  --") {
			flags = append(flags, strings.Fields(line)[0])
		}
	}
	return flags
}

// topWords are the first words: groups once, single commands, help, version.
func topWords() []string {
	var words []string
	for _, c := range append(commands(), command{name: "help"}, command{name: "version"}) {
		w := strings.Fields(c.name)[0]
		if !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	return words
}

func writeBash(w io.Writer) {
	fmt.Fprintln(w, "# ztmesh completion for bash (ztmesh completion bash)")
	fmt.Fprintln(w, "_ztmesh() {")
	fmt.Fprintln(w, `  local cur=${COMP_WORDS[COMP_CWORD]} words=""`)
	fmt.Fprintf(w, "  if [ \"$COMP_CWORD\" -eq 1 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi\n", strings.Join(topWords(), " "))
	fmt.Fprintln(w, `  case "${COMP_WORDS[1]}" in`)
	groups := map[string][]string{}
	var order []string
	for _, c := range commands() {
		if f := strings.Fields(c.name); len(f) == 2 {
			if _, ok := groups[f[0]]; !ok {
				order = append(order, f[0])
			}
			groups[f[0]] = append(groups[f[0]], f[1])
		}
	}
	for _, g := range order {
		fmt.Fprintf(w, "  %s)\n    if [ \"$COMP_CWORD\" -eq 2 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi\n", g, strings.Join(groups[g], " "))
		fmt.Fprintln(w, `    case "${COMP_WORDS[2]}" in`)
		for _, c := range commands() {
			if f := strings.Fields(c.name); len(f) == 2 && f[0] == g {
				fmt.Fprintf(w, "    %s) words=%q ;;\n", f[1], strings.Join(commandFlags(c), " "))
			}
		}
		fmt.Fprintln(w, "    esac ;;")
	}
	for _, c := range commands() {
		if f := strings.Fields(c.name); len(f) == 1 {
			words := commandFlags(c)
			if c.name == "completion" {
				words = []string{"bash", "zsh", "fish"}
			}
			fmt.Fprintf(w, "  %s) words=%q ;;\n", f[0], strings.Join(words, " "))
		}
	}
	fmt.Fprintln(w, "  esac")
	fmt.Fprintln(w, `  COMPREPLY=($(compgen -W "$words" -- "$cur"))`)
	fmt.Fprintln(w, "}")
	fmt.Fprintln(w, "complete -o default -F _ztmesh ztmesh")
}

func writeFish(w io.Writer) {
	fmt.Fprintln(w, "# ztmesh completion for fish (ztmesh completion fish)")
	fmt.Fprintln(w, "complete -c ztmesh -f")
	for _, word := range topWords() {
		fmt.Fprintf(w, "complete -c ztmesh -n __fish_use_subcommand -a %s\n", word)
	}
	for _, c := range commands() {
		f := strings.Fields(c.name)
		cond := fmt.Sprintf("__fish_seen_subcommand_from %s", f[0])
		if len(f) == 2 {
			fmt.Fprintf(w, "complete -c ztmesh -n '%s; and not __fish_seen_subcommand_from %s' -a %s -d %q\n", cond, f[1], f[1], c.summary)
			cond += "; and __fish_seen_subcommand_from " + f[1]
		}
		for _, flag := range commandFlags(c) {
			fmt.Fprintf(w, "complete -c ztmesh -n '%s' -l %s -r\n", cond, strings.TrimPrefix(flag, "--"))
		}
	}
}
