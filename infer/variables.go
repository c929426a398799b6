package infer

import (
	"fmt"

	tf "github.com/wamuir/graft/tensorflow"
	"github.com/wamuir/graft/tensorflow/op"
)

// Variables is a ParamFunc source that keeps each weight in a TensorFlow
// resource variable instead of a Const node. Constants are copied into the
// GraphDef, into each copy the graph optimiser makes and into the executor:
// for this network ~390 MB of resident memory against ~100 MB with
// variables. The variables also give an optimiser something to update
// (Handle). Use one Variables per graph:
//
//	vars := infer.NewVariables(scope.SubScope("weights"))
//	emb, err := infer.BuildBackbone(scope, x, w, vars.Param)
//	graph, err := scope.Finalize()
//	sess, err := tf.NewSession(graph, nil)
//	err = vars.Init(sess) // once, before the first run
type Variables struct {
	scope   *op.Scope
	names   []string
	handles map[string]tf.Output
	feeds   map[tf.Output]*tf.Tensor
	assigns []*tf.Operation
}

// NewVariables returns an empty set; its variables are created under s.
func NewVariables(s *op.Scope) *Variables {
	return &Variables{scope: s, handles: map[string]tf.Output{}, feeds: map[tf.Output]*tf.Tensor{}}
}

// Param is a ParamFunc: it creates a float32 variable named after the
// weight (its shared_name is the weight's name, unique within the graph),
// to be initialised to value by Init, and returns the variable's value.
func (v *Variables) Param(name string, value *tf.Tensor) tf.Output {
	s := v.scope.SubScope(name)
	shape := tf.MakeShape(value.Shape()...)
	// An empty shared_name would make every variable the same resource.
	h := op.VarHandleOp(s, tf.Float, shape, op.VarHandleOpSharedName(name))
	init := op.Placeholder(s.SubScope("init"), tf.Float, op.PlaceholderShape(shape))
	v.feeds[init] = value
	v.assigns = append(v.assigns, op.AssignVariableOp(s, h, init))
	v.names = append(v.names, name)
	v.handles[name] = h
	return op.ReadVariableOp(s, h, tf.Float)
}

// Init assigns every variable its initial value in sess (a session on the
// graph the variables were built in), then drops the initial tensors.
func (v *Variables) Init(sess *tf.Session) error {
	if len(v.assigns) == 0 {
		return nil
	}
	if _, err := sess.Run(v.feeds, nil, v.assigns); err != nil {
		return fmt.Errorf("initialise weights: %w", err)
	}
	v.feeds = map[tf.Output]*tf.Tensor{}
	v.assigns = nil
	return nil
}

// Handle returns the resource handle of the named weight's variable (for
// optimiser update ops such as op.ResourceApplyAdam).
func (v *Variables) Handle(name string) (tf.Output, bool) {
	h, ok := v.handles[name]
	return h, ok
}

// Names lists the weights held in variables, in creation order.
func (v *Variables) Names() []string { return append([]string(nil), v.names...) }
