package consensus

import (
	"fmt"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// allowed are the builtins a rule may call: each gives the same result on
// every device for the same data. Anything else is refused, in particular
// the builtins that read the clock or the time zone (now, date, timezone,
// duration), that expose map iteration order (keys, values, toPairs,
// fromPairs, groupBy, toJSON, fromJSON, get), and those that can build
// unbounded data from a small rule (repeat, reduce, sort, sortBy, split).
var allowed = map[string]bool{
	"all": true, "none": true, "any": true, "one": true,
	"filter": true, "map": true, "count": true, "sum": true,
	"find": true, "findIndex": true, "findLast": true, "findLastIndex": true,
	"len": true, "abs": true, "ceil": true, "floor": true, "round": true,
	"int": true, "float": true, "string": true,
	"trim": true, "trimPrefix": true, "trimSuffix": true, "upper": true, "lower": true,
	"indexOf": true, "lastIndexOf": true, "hasPrefix": true, "hasSuffix": true,
	"max": true, "min": true, "mean": true, "median": true,
	"first": true, "last": true, "take": true, "reverse": true, "uniq": true,
}

// banReason says why a known builtin is refused.
var banReason = map[string]string{
	"now":       "reads the clock",
	"date":      "depends on the clock or the local time zone",
	"timezone":  "depends on the time zone database",
	"duration":  "yields a value with methods; use seconds (elapsed is a float)",
	"keys":      "depends on map iteration order",
	"values":    "depends on map iteration order",
	"toPairs":   "depends on map iteration order",
	"fromPairs": "builds a map",
	"groupBy":   "depends on map iteration order",
	"toJSON":    "depends on map encoding",
	"fromJSON":  "builds maps",
	"get":       "reads maps",
	"repeat":    "can build unbounded strings",
	"reduce":    "can build unbounded values",
	"sort":      "is not needed by a rule",
	"sortBy":    "is not needed by a rule",
	"split":     "is not needed by a rule",
}

// checkPure parses src and walks the tree, refusing what a rule may not
// use. It reports whether the rule reads elapsed.
func checkPure(src string) (usesElapsed bool, err error) {
	tree, perr := parser.Parse(src)
	if perr != nil {
		return false, toError(src, perr)
	}
	w := &walker{src: src}
	w.walk(tree.Node, 0)
	if w.err != nil {
		return false, w.err
	}
	if w.nodes > MaxNodes {
		return false, &Error{Line: 1, Column: 1, Reason: fmt.Sprintf("rule has %d nodes, more than the %d allowed", w.nodes, MaxNodes)}
	}
	return w.elapsed, nil
}

type walker struct {
	src     string
	nodes   int
	elapsed bool
	err     *Error
}

func (w *walker) refuse(n ast.Node, format string, args ...any) {
	if w.err != nil {
		return
	}
	line, col := position(w.src, n.Location().From)
	w.err = &Error{Line: line, Column: col, Reason: fmt.Sprintf(format, args...)}
}

// walk visits n, depth being the number of predicates around it.
func (w *walker) walk(n ast.Node, depth int) {
	if n == nil || w.err != nil {
		return
	}
	w.nodes++
	if w.nodes > MaxNodes {
		w.refuse(n, "rule has more than the %d nodes allowed", MaxNodes)
		return
	}
	switch n := n.(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "$env":
			w.refuse(n, "$env is not allowed")
		case "elapsed":
			w.elapsed = true
		}
	case *ast.UnaryNode:
		w.walk(n.Node, depth)
	case *ast.BinaryNode:
		if n.Operator == ".." {
			w.refuse(n, "ranges (..) are not allowed")
			return
		}
		w.walk(n.Left, depth)
		w.walk(n.Right, depth)
	case *ast.ChainNode:
		w.walk(n.Node, depth)
	case *ast.MemberNode:
		w.walk(n.Node, depth)
		w.walk(n.Property, depth)
	case *ast.SliceNode:
		w.walk(n.Node, depth)
		w.walk(n.From, depth)
		w.walk(n.To, depth)
	case *ast.CallNode:
		if _, ok := n.Callee.(*ast.IdentifierNode); !ok {
			w.refuse(n, "method calls are not allowed; call a helper by name (voted, tally, share, quorum, majority, unanimous)")
			return
		}
		w.walk(n.Callee, depth)
		for _, a := range n.Arguments {
			w.walk(a, depth)
		}
	case *ast.BuiltinNode:
		if !allowed[n.Name] {
			if why, ok := banReason[n.Name]; ok {
				w.refuse(n, "builtin %s is not allowed: it %s", n.Name, why)
			} else {
				w.refuse(n, "builtin %s is not allowed in a rule", n.Name)
			}
			return
		}
		for _, a := range n.Arguments {
			w.walk(a, depth)
		}
	case *ast.PredicateNode:
		if depth+1 > MaxPredicateDepth {
			w.refuse(n, "predicates are nested %d deep, more than the %d allowed", depth+1, MaxPredicateDepth)
			return
		}
		w.walk(n.Node, depth+1)
	case *ast.PointerNode:
		if n.Name == "acc" {
			w.refuse(n, "#acc is not allowed")
		}
	case *ast.ConditionalNode:
		w.walk(n.Cond, depth)
		w.walk(n.Exp1, depth)
		w.walk(n.Exp2, depth)
	case *ast.ArrayNode:
		for _, a := range n.Nodes {
			w.walk(a, depth)
		}
	case *ast.NilNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.StringNode:
	case *ast.VariableDeclaratorNode:
		w.refuse(n, "let is not allowed in a rule")
	case *ast.SequenceNode:
		w.refuse(n, "sequences (;) are not allowed in a rule")
	case *ast.MapNode, *ast.PairNode:
		w.refuse(n, "map literals are not allowed in a rule")
	default:
		w.refuse(n, "%T is not allowed in a rule", n)
	}
}
