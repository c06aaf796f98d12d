package consensus

// PresetInfo names a common rule.
type PresetInfo struct {
	Name  string `json:"name"`
	Rule  string `json:"rule"`
	About string `json:"about"`
}

// presets are the named rules, each written so that the result (the choice
// with the highest tally) is the choice the rule decided on.
var presets = []PresetInfo{
	{"majority", `tally("yes") > n / 2 || tally("no") > n / 2`,
		`closes once more than half of all members vote the same way, yes or no; the result is that choice`},
	{"supermajority", `tally("yes") >= n * 2 / 3 || tally("no") >= n * 2 / 3`,
		`closes once at least two thirds of all members vote the same way, yes or no; the result is that choice; stays open otherwise`},
	{"unanimity", `unanimous("yes") || unanimous("no")`,
		`closes once every member's latest vote is the same, yes or no; the result is that choice`},
	{"consent", `elapsed >= 86400 && tally("no") == 0`,
		`closes 24 hours after the start if nobody objects (no "no" vote); the result is the most common vote, "" if nobody voted; re-evaluated on a timer`},
	{"quorum", `quorum(2/3) && majority("yes")`,
		`closes once two thirds of the members have voted and more than half of those voted yes; the result is "yes"`},
	{"everyone", `voted() == n`,
		`closes once every member has voted or answered (an invitation's rsvp); the result is the most common answer, ties to the smallest name`},
}

// Presets lists the named rules.
func Presets() []PresetInfo { return append([]PresetInfo(nil), presets...) }

// Preset returns the rule text of the preset name.
func Preset(name string) (rule string, ok bool) {
	for _, p := range presets {
		if p.Name == name {
			return p.Rule, true
		}
	}
	return "", false
}
