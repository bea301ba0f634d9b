package management

import "strings"

// Quote makes one argument safe for a POSIX shell: the remote end of an SSH
// session hands its command string to the user's shell, so every element of
// an argument vector is quoted on its own. Plain words stay as they are;
// anything else goes between single quotes, with each single quote written
// as '\”.
func Quote(arg string) string {
	if arg == "" {
		return "''"
	}
	plain := true
	for _, r := range arg {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-+.,/:@%", r)) {
			plain = false
			break
		}
	}
	if plain {
		return arg
	}
	return "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
}

// Command turns an argument vector into the command string of an SSH
// session, quoting each argument with Quote.
func Command(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}
