package tomlpatch

// Both key trees of a document (the index Lookup reads, and the keys the
// semantic check has seen) keep their children in one map per tree, keyed
// by parent and name, sized for the document once: a map for every table
// was most of the cost of indexing a document.

// child names a child in a tree of T.
type child[T any] struct {
	parent *T
	name   string
}

// slab hands out values of T from larger allocations.
type slab[T any] struct{ free []T }

func (s *slab[T]) new() *T {
	if len(s.free) == 0 {
		s.free = make([]T, 32)
	}
	t := &s.free[0]
	s.free = s.free[1:]
	return t
}
