// Package head is the small trainable projection that sits after the frozen
// backbone: it maps a raw 128-d backbone embedding into the matching space
// where the gallery compares faces.
//
// # Model
//
// A Head is a stack of 1..MaxLayers square linear layers (y = x·W + b, the
// TensorFlow MatMul convention, W row-major [in][out]) with a PReLU between
// consecutive layers, wrapped in L2 normalisation on both sides:
//
//	x0 = raw / |raw|
//	x1 = x0·W1 + b1
//	x1 = PReLU(x1; alpha1)         (only when a second layer follows)
//	x2 = x1·W2 + b2
//	out = x_last / |x_last|
//
// Every layer starts at the identity (W = I, b = 0) and every PReLU slope at
// 1, so a fresh head of any depth is exactly "L2-normalise the backbone
// vector", i.e. the frozen network's behaviour. PReLU rather than ReLU was
// chosen for that reason: a ReLU between identity layers would zero half of
// every embedding on the first step, while a PReLU with slope 1 is linear
// and training only introduces as much non-linearity as the loss asks for.
// The input normalisation makes the head insensitive to the backbone's norm
// spread (raw norms are 1.18-1.68), which keeps training on raw store
// vectors well conditioned.
//
// # Usage
//
// Identity() returns the 128-d identity head. (*Head).Project implements the
// gallery's Projector interface and is safe for concurrent use (a Head is
// immutable once built). Marshal/Unmarshal give a versioned little-endian
// binary form with a CRC-32C checksum; corrupt input yields ErrCorrupt,
// ErrChecksum or ErrVersion, never a panic. The finetune package reads a
// head's parameters with Layers and builds the trained one with FromLayers.
//
// The package is pure Go (no cgo) so the gallery and store can use it.
package head
