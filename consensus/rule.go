package consensus

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Limits on a rule. A rule beyond any of them is refused by Compile.
//
// Predicates may not nest: inside an inner predicate expr offers no way to
// name the outer element (# is the inner one, and let is refused), so a
// nested predicate cannot relate the two and buys a rule nothing, while
// two of them over 1,000 votes cost about 0.15 s per evaluation (10,000:
// about 15 s), after every message, on every member's device.
const (
	MaxSourceBytes    = 1024    // bytes of rule text
	MaxNodes          = 200     // nodes of the parsed tree
	MaxPredicateDepth = 1       // predicates (count, filter, all, …) nested in each other: none (see below)
	MemoryBudget      = 100_000 // expr's memory units per Eval (vm.VM.MemoryBudget)
)

// Error is a rule refused at compile time: where and why. Line and Column
// are 1-based; Column counts characters (runes).
type Error struct {
	Line, Column int
	Reason       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Reason)
}

// ErrBudget is returned (wrapped) by Eval when the rule exceeds its memory budget.
var ErrBudget = errors.New("consensus: rule exceeded its memory budget")

// Rule is a compiled rule. It is safe for concurrent Eval.
type Rule struct {
	src     string
	program *vm.Program
	elapsed bool
	vms     sync.Pool
}

// Compile parses, checks and compiles src. Every refusal is an *Error:
// syntax, type, a result that is not a bool, a banned builtin, a method, too
// many nodes, predicates nested too deep, or a source too long.
func Compile(src string) (*Rule, error) {
	if len(src) > MaxSourceBytes {
		return nil, &Error{Line: 1, Column: 1, Reason: fmt.Sprintf("rule is %d bytes, more than the %d allowed", len(src), MaxSourceBytes)}
	}
	usesElapsed, err := checkPure(src)
	if err != nil {
		return nil, err
	}
	program, err := expr.Compile(src, compileOptions()...)
	if err != nil {
		return nil, toError(src, err)
	}
	return &Rule{src: src, program: program, elapsed: usesElapsed}, nil
}

// Source returns the rule's text.
func (r *Rule) Source() string { return r.src }

// UsesElapsed says whether the rule reads elapsed: such a rule can become
// true with no new message, so re-evaluate it on a timer too.
func (r *Rule) UsesElapsed() bool { return r.elapsed }

// Eval evaluates the rule over t at elapsed from the conversation's start.
// It fails (wrapping ErrBudget) when the rule exceeds its memory budget, or
// on a runtime error such as an index out of range. Eval does not modify t;
// t must not be modified during Eval.
func (r *Rule) Eval(t *Tally, elapsed time.Duration) (bool, error) {
	m, _ := r.vms.Get().(*vm.VM)
	if m == nil {
		m = &vm.VM{}
	}
	m.MemoryBudget = MemoryBudget
	e := t.env(elapsed)
	out, err := m.Run(r.program, e)
	r.vms.Put(m)
	if err != nil {
		if isBudget(err) {
			return false, fmt.Errorf("%w (%d units)", ErrBudget, MemoryBudget)
		}
		return false, fmt.Errorf("consensus: evaluating rule: %w", err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("consensus: rule returned %T, not a bool", out)
	}
	return b, nil
}

// toError turns an expr compile error into an *Error with a 1-based position.
func toError(src string, err error) *Error {
	var fe *file.Error
	if errors.As(err, &fe) {
		line, col := position(src, fe.From)
		return &Error{Line: line, Column: col, Reason: goNames.Replace(fe.Message)}
	}
	return &Error{Line: 1, Column: 1, Reason: err.Error()}
}

// goNames rewords the Go type names in expr's messages as a rule's author
// knows them.
var goNames = strings.NewReplacer(
	"*consensus.ruleEnv", "the environment",
	"consensus.ruleEnv", "the environment",
	"consensus.envVote", "vote",
	"consensus.envMessage", "message",
)

// position converts a rune offset in src into a 1-based line and column.
func position(src string, offset int) (line, col int) {
	line, col = 1, 1
	i := 0
	for _, r := range src {
		if i == offset {
			break
		}
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
		i++
	}
	return line, col
}

// isBudget says whether err is expr's memory budget panic, as vm.Run reports it.
func isBudget(err error) bool {
	var fe *file.Error
	return errors.As(err, &fe) && strings.Contains(fe.Message, "memory budget exceeded")
}
