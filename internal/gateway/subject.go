package gateway

import "strings"

// subjectMatch reports whether the NATS subject matches filter, where a
// "*" token of filter matches any one token and a final ">" the rest.
func subjectMatch(filter, subject string) bool {
	for {
		ft, frest, fmore := strings.Cut(filter, ".")
		st, srest, smore := strings.Cut(subject, ".")
		if ft == ">" {
			return true
		}
		if ft != "*" && ft != st {
			return false
		}
		if !fmore || !smore {
			return fmore == smore
		}
		filter, subject = frest, srest
	}
}

// subjectCovers reports whether every subject matching inner also matches
// outer, for filters whose wildcards are "*" tokens only.
func subjectCovers(outer, inner string) bool {
	ot, it := strings.Split(outer, "."), strings.Split(inner, ".")
	if len(ot) != len(it) {
		return false
	}
	for i := range ot {
		if ot[i] != "*" && ot[i] != it[i] {
			return false
		}
	}
	return true
}
