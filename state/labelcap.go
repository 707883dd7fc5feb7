package state

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/pipetel/pipetel/schemas"
)

// DefaultMaxLabelValues is Options.MaxLabelValues when it is 0 or less.
const DefaultMaxLabelValues = schemas.DefaultMaxLabelValues

// OtherLabelValue is the event name (network: operation) under which a unit
// counts the metrics of names it has no room for. A metric really named
// "other" shares that series.
const OtherLabelValue = schemas.OtherLabelValue

// aggNameKind marks a name that has series of its own: tag + p + 'n' + the
// name (the rest of the key, so no escaping) → empty. One Get tells a
// batch whether a name is known, without reading its series.
const aggNameKind = 'n'

func aggNameKey(tag [2]byte, p int32, name string) []byte {
	return key(tag, p, []byte{aggNameKind}, []byte(name))
}

func (s *Store) maxLabelValues() uint64 {
	if s.opts.MaxLabelValues > 0 {
		return uint64(s.opts.MaxLabelValues)
	}
	return DefaultMaxLabelValues
}

// labelFor returns the name a metric of this name is aggregated under: its
// own while the name already has series or the unit has fewer than
// MaxLabelValues names, else OtherLabelValue, counted as folded. The cap is
// per unit and kept in the unit's state, so it decides the same on every
// instance and replay; the finished metric itself keeps its name.
func (b *Batch) labelFor(name string) (string, error) {
	a := b.agg
	known, read := a.names[name]
	if !read {
		_, err := b.txn.Get(aggNameKey(aggregatesTag(b.unit.Stream), b.unit.Partition, name))
		switch {
		case err == nil:
			known = true
		case !errors.Is(err, badger.ErrKeyNotFound):
			return "", fmt.Errorf("cannot read label value %q: %w", name, err)
		}
		a.names[name] = known
	}
	if known {
		return name, nil
	}
	if a.meta.Names < b.s.maxLabelValues() {
		b.addName(name)
		return name, nil
	}
	a.meta.Folded++
	a.metaDirty = true
	return OtherLabelValue, nil
}

// addName gives name series of its own, written at flush.
func (b *Batch) addName(name string) {
	a := b.agg
	if a.names[name] {
		return
	}
	a.names[name] = true
	a.newNames = append(a.newNames, name)
	a.meta.Names++
	a.metaDirty = true
}
