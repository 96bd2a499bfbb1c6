/**
 * The scripts `hapops completion bash|zsh|fish` prints. Each is small and the same on every
 * machine: it hands the words typed so far to `hapops __complete` (the hapops being completed,
 * as typed) and offers what that prints, one candidate per line (a tab, then a description),
 * then a last line `:files`, `:dirs` or `:` for what the shell adds itself. The commands and
 * flags therefore always match the installed hapops, and names come from its socket.
 */

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

const BASH = String.raw`# bash completion for hapops                                    -*- shell-script -*-
#
# Installed as /usr/share/bash-completion/completions/hapops (bash-completion loads it on the
# first Tab), or for this shell only:   source <(hapops completion bash)
#
# Candidates come from "hapops __complete": commands and flags of the hapops being completed,
# and names (backends, servers, tables, maps, certificates, targets, groups) from the config and
# socket the typed line would use, read within 300 ms. Names may contain ":", which bash splits
# words at; this script joins them again and needs nothing else installed.

_hapops() {
    local IFS=$' \t\n' line=$\{COMP_LINE:0:COMP_POINT} pos=0 gap=0 i w
    local -a words=() lines=() reply=()
    # bash also splits at COMP_WORDBREAKS (":" and "="): "be:web:8080" arrives as five words.
    # A word starts after whitespace, so the pieces are glued back together.
    for ((i = 0; i <= COMP_CWORD && i < $\{#COMP_WORDS[@]}; i++)); do
        w=$\{COMP_WORDS[i]}
        gap=0
        while [[ $\{line:pos:1} == [[:space:]] ]]; do
            pos=$((pos + 1)) gap=1
        done
        if ((pos + $\{#w} > $\{#line})); then w=$\{line:pos}; fi
        if ((i == 0 || gap)); then
            words+=("$w")
        else
            words[$\{#words[@]} - 1]+=$w
        fi
        pos=$((pos + $\{#w}))
    done
    (($\{#words[@]} > 1)) || return 0
    local cur=$\{words[$\{#words[@]} - 1]} cmd=$\{words[0]}
    [[ $cmd == "~/"* ]] && cmd=$HOME/$\{cmd#"~/"}

    mapfile -t lines < <("$cmd" __complete -- "$\{words[@]:1}" 2>/dev/null)
    (($\{#lines[@]} > 0)) || return 0
    local directive=$\{lines[$\{#lines[@]} - 1]}
    lines=("$\{lines[@]:0:$\{#lines[@]} - 1}")

    # Readline replaces only the text after the word's last break character (a ":" in a
    # server name, the "=" of --flag=value): take what comes before it off each candidate.
    local keep= j c item
    if [[ $cur != [\"\']* ]]; then
        for ((j = $\{#cur} - 1; j >= 0; j--)); do
            c=$\{cur:j:1}
            if [[ $COMP_WORDBREAKS == *"$c"* ]]; then
                keep=$\{cur:0:j+1}
                break
            fi
        done
    fi
    for item in "$\{lines[@]}"; do
        item=$\{item%%$'\t'*}
        [[ -n $item && $item == "$keep"* ]] || continue
        item=$\{item:$\{#keep}}
        case $directive in
        :files | :dirs) reply+=("$item") ;;
        *)
            # Typed without a quote, "be_app/*" must go in as be_app/\* (never a glob).
            if [[ $cur != [\"\']* && $item == *[^A-Za-z0-9_./:,@%+=-]* ]]; then
                printf -v item '%q' "$item"
            fi
            # A backend ("be_app/") goes on with a server name: no space after it.
            [[ $item == */ ]] || item+=" "
            reply+=("$item")
            ;;
        esac
    done
    case $directive in
    :files | :dirs)
        # Readline quotes file names and marks directories itself.
        compopt -o filenames +o nospace 2>/dev/null
        local path=$cur
        [[ $path == -*=* ]] && path=$\{path#*=}
        if [[ $directive == :dirs ]]; then
            mapfile -t -O $\{#reply[@]} reply < <(compgen -d -- "$path")
        else
            mapfile -t -O $\{#reply[@]} reply < <(compgen -f -- "$path")
        fi
        ;;
    esac
    COMPREPLY=("$\{reply[@]}")
}
complete -o nospace -F _hapops hapops
`;

const ZSH = String.raw`#compdef hapops
# zsh completion for hapops
#
# Installed as _hapops in a directory of $fpath (/usr/share/zsh/vendor-completions/_hapops), or
# for this shell only, after compinit:   source <(hapops completion zsh)
#
# Candidates come from "hapops __complete": commands and flags of the hapops being completed,
# and names (backends, servers, tables, maps, certificates, targets, groups) from the config and
# socket the typed line would use, read within 300 ms.

_hapops() {
  local -a lines spaced bare
  local directive line word desc cmd=$\{(Q)words[1]} ret=1
  [[ $cmd == '~/'* ]] && cmd=$HOME/$\{cmd#'~/'}
  lines=("$\{(@f)$("$cmd" __complete -- "$\{(@)words[2,CURRENT]}" 2>/dev/null)}")
  directive=$\{lines[-1]}
  for line in "$\{(@)lines[1,-2]}"; do
    [[ -n $line ]] || continue
    word=$\{line%%$'\t'*}
    desc=
    [[ $line == *$'\t'* ]] && desc=$\{line#*$'\t'}
    # _describe reads "word:description"; a ":" in a server name is escaped.
    word=$\{word//:/\\:}
    # A backend ("be_app/") goes on with a server name: no space after it.
    if [[ $word == */ ]]; then
      bare+=("$word$\{desc:+:$desc}")
    else
      spaced+=("$word$\{desc:+:$desc}")
    fi
  done
  (( $#spaced )) && _describe -t hapops hapops spaced && ret=0
  (( $#bare )) && _describe -t hapops hapops bare -S '' && ret=0
  case $directive in
    (:files) _files && ret=0 ;;
    (:dirs) _files -/ && ret=0 ;;
  esac
  return ret
}

# Autoloaded from $fpath, this file's body runs as _hapops: define it, then complete. Sourced:
# register it.
if [[ $funcstack[1] == _hapops ]]; then
  _hapops "$@"
elif (( $+functions[compdef] )); then
  compdef _hapops hapops
else
  print -u2 "hapops: zsh completion needs compinit first (autoload -U compinit && compinit)"
fi
`;

const FISH = String.raw`# fish completion for hapops
#
# Install as ~/.config/fish/completions/hapops.fish, or for this shell only:
#   hapops completion fish | source
#
# Candidates come from "hapops __complete": commands and flags of the hapops being completed,
# and names (backends, servers, tables, maps, certificates, targets, groups) from the config and
# socket the typed line would use, read within 300 ms.

function __hapops_complete
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l out ($tokens[1] __complete -- $tokens[2..-1] $current 2>/dev/null)
    set -q out[1]; or return
    set -l directive $out[-1]
    set -e out[-1]
    set -q out[1]; and printf '%s\n' $out
    switch $directive
        case :files
            __fish_complete_path $current
        case :dirs
            __fish_complete_directories $current
    end
end
complete -c hapops -f -a '(__hapops_complete)'
`;

/** The scripts are written with `$\{` for the shell's `${` (a template literal's own). */
export function completionScript(shell: Shell): string {
  const text = shell === "bash" ? BASH : shell === "zsh" ? ZSH : FISH;
  return text.replaceAll("$\\{", "${");
}
