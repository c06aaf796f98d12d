package consensus

import (
	"reflect"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/parser"
)

// checkTypes type-checks src as Compile does and refuses what needs the
// types to see: string() of anything but a scalar (a string, number or
// bool). string() of a list or a vote formats the whole value, a cost the
// memory budget does not count (string(messages) is every body at once),
// and of anything holding a func it would format a code address, which
// differs between builds and runs: devices would disagree.
func checkTypes(src string) error {
	cfg := conf.CreateNew()
	for _, op := range compileOptions() {
		op(cfg)
	}
	cfg.Check()
	tree, err := parser.ParseWithConfig(src, cfg)
	if err != nil {
		return toError(src, err)
	}
	if _, err := checker.Check(tree, cfg); err != nil {
		return toError(src, err)
	}
	v := &typeVisitor{src: src}
	ast.Walk(&tree.Node, v)
	if v.err != nil {
		return v.err
	}
	return nil
}

type typeVisitor struct {
	src string
	err *Error
}

func (v *typeVisitor) Visit(node *ast.Node) {
	n, ok := (*node).(*ast.BuiltinNode)
	if !ok || v.err != nil || n.Name != "string" || len(n.Arguments) != 1 {
		return
	}
	if !scalar(n.Arguments[0].Type()) {
		line, col := position(v.src, n.Location().From)
		v.err = &Error{Line: line, Column: col, Reason: "string() takes a string, a number or a bool"}
	}
}

// scalar says whether a value of type t formats the same on every device
// at a cost bounded by its own size.
func scalar(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}
