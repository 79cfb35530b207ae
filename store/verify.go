package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"
)

// verifyFile checks the on-disk structure of the bbolt file at path before bbolt is let near it.
//
// bbolt trusts its file: it reads it through a memory map with unchecked offsets and checksums only
// its meta pages. A damaged data page (one that bbolt's own Tx.Check may even pass) can make it
// fault (SIGSEGV/SIGBUS, fatal to the process unless the goroutine asked for panics) or panic much
// later in a write ("page already freed"): a crash loop at every start. So this re-reads the file with
// ordinary, bounds-checked reads and verifies every page bbolt could touch: the meta page bbolt
// would pick, the freelist, and every B+tree page of every bucket (headers, element bounds, key
// order, that a branch key equals its child's first key, that no page is reachable twice or both
// reachable and free). Unreachable pages that are not free (leaks) are harmless and accepted.
//
// It returns "" when the file is sound, otherwise why not. It also reports the top-level bucket
// names so the caller can tell foreign files apart; sub-buckets of foreign files are not walked.
func verifyFile(path string, ours [][]byte) (reason string, topLevel []string) {
	f, err := os.Open(path)
	if err != nil {
		return "cannot read it: " + err.Error(), nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "cannot read it: " + err.Error(), nil
	}
	c := &checker{r: f, size: fi.Size(), used: map[uint64]bool{}, free: map[uint64]bool{}}
	if err := c.meta(); err != nil {
		return err.Error(), nil
	}
	if err := c.freelist(); err != nil {
		return err.Error(), nil
	}
	// The root bucket: collect its entries without descending into the buckets yet.
	type sub struct{ name, value []byte }
	var subs []sub
	err = c.tree(c.root, nil, nil, 0, func(k, v []byte, flags uint32) error {
		if flags&bucketLeafFlag == 0 {
			return fmt.Errorf("root bucket holds a plain key %q", truncate(k))
		}
		subs = append(subs, sub{k, v})
		topLevel = append(topLevel, string(k))
		return nil
	})
	if err != nil {
		return "damaged: " + err.Error(), nil
	}
	if len(subs) == 0 {
		return "", nil
	}
	if len(subs) != len(ours) {
		return "", topLevel // foreign; the caller words the reason
	}
	for i, s := range subs { // both sorted
		if !bytes.Equal(s.name, ours[i]) {
			return "", topLevel
		}
	}
	for _, s := range subs {
		if err := c.bucket(s.value, 1); err != nil {
			return fmt.Sprintf("damaged: bucket %q: %v", s.name, err), topLevel
		}
	}
	return "", topLevel
}

const (
	pageHeaderSize = 16
	elemSize       = 16 // leaf and branch page elements are both 16 bytes
	branchFlag     = 0x01
	leafFlag       = 0x02
	metaFlag       = 0x04
	freelistFlag   = 0x10
	bucketLeafFlag = 0x01
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	noFreelist     = ^uint64(0)
	maxDepth       = 64
)

var ne = binary.NativeEndian // bbolt files are in the writer's native byte order

type checker struct {
	r        io.ReaderAt
	size     int64
	ps       int64  // page size
	hw       uint64 // high-water page id: pages [0, hw) exist
	root     uint64 // root bucket's root page
	freePgid uint64
	used     map[uint64]bool // pages reachable so far
	free     map[uint64]bool // pages in the freelist
}

type metaPage struct {
	pageSize, root, freelist, pgid, txid uint64
}

// readMeta parses and validates the meta page at off, the way bbolt's Meta.Validate does.
func (c *checker) readMeta(off int64) (metaPage, error) {
	var b [pageHeaderSize + 64]byte
	if _, err := c.r.ReadAt(b[:], off); err != nil {
		return metaPage{}, errors.New("short")
	}
	m := b[pageHeaderSize:]
	if ne.Uint32(m[0:]) != boltMagic {
		return metaPage{}, errors.New("bad magic")
	}
	if ne.Uint32(m[4:]) != boltVersion {
		return metaPage{}, fmt.Errorf("bbolt format version %d", ne.Uint32(m[4:]))
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != ne.Uint64(m[56:]) {
		return metaPage{}, errors.New("checksum mismatch")
	}
	return metaPage{
		pageSize: uint64(ne.Uint32(m[8:])),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}, nil
}

func (c *checker) meta() error {
	// Page size: from meta 0, else from meta 1 found by probing (as bbolt does).
	var ps uint64
	if m, err := c.readMeta(0); err == nil {
		ps = m.pageSize
	} else {
		for i := range 15 {
			if m, err := c.readMeta(1024 << i); err == nil {
				ps = m.pageSize
				break
			}
		}
	}
	if ps == 0 {
		return errors.New("not a bbolt database (no valid meta page)")
	}
	if ps < 1024 || ps > 1<<24 || ps&(ps-1) != 0 {
		return fmt.Errorf("damaged: implausible page size %d", ps)
	}
	c.ps = int64(ps)
	if c.size < 2*c.ps {
		return fmt.Errorf("truncated: file is %d bytes, shorter than its two meta pages", c.size)
	}
	m0, err0 := c.readMeta(0)
	m1, err1 := c.readMeta(c.ps)
	var m metaPage
	switch { // the valid one with the higher txid, as bbolt's DB.meta picks
	case err0 == nil && (err1 != nil || m0.txid >= m1.txid):
		m = m0
	case err1 == nil:
		m = m1
	default:
		return fmt.Errorf("not a bbolt database (meta pages: %v; %v)", err0, err1)
	}
	if m.pageSize != ps {
		return fmt.Errorf("damaged: meta pages disagree on the page size")
	}
	if m.pgid < 3 || m.pgid > uint64(c.size/c.ps) {
		return fmt.Errorf("truncated: file is %d bytes, its database needs %d", c.size, m.pgid*ps)
	}
	c.hw = m.pgid
	if m.root < 2 || m.root >= c.hw {
		return fmt.Errorf("damaged: root page %d out of range", m.root)
	}
	c.root, c.freePgid = m.root, m.freelist
	c.used[0], c.used[1] = true, true
	return nil
}

// page reads page id and its overflow pages, marking them reachable.
func (c *checker) page(id uint64) ([]byte, error) {
	if id < 2 || id >= c.hw {
		return nil, fmt.Errorf("page %d out of range [2, %d)", id, c.hw)
	}
	var h [pageHeaderSize]byte
	if _, err := c.r.ReadAt(h[:], int64(id)*c.ps); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	if got := ne.Uint64(h[0:]); got != id {
		return nil, fmt.Errorf("page %d: header says page %d", id, got)
	}
	overflow := uint64(ne.Uint32(h[12:]))
	if id+overflow >= c.hw {
		return nil, fmt.Errorf("page %d: %d overflow pages run past the end", id, overflow)
	}
	for p := id; p <= id+overflow; p++ {
		if c.used[p] {
			return nil, fmt.Errorf("page %d reachable twice", p)
		}
		if c.free[p] {
			return nil, fmt.Errorf("page %d both in use and free", p)
		}
		c.used[p] = true
	}
	buf := make([]byte, int64(overflow+1)*c.ps)
	if _, err := c.r.ReadAt(buf, int64(id)*c.ps); err != nil {
		return nil, fmt.Errorf("page %d: %v", id, err)
	}
	return buf, nil
}

func (c *checker) freelist() error {
	if c.freePgid == noFreelist {
		return nil // bbolt rebuilds it from the tree
	}
	buf, err := c.page(c.freePgid)
	if err != nil {
		return fmt.Errorf("damaged: freelist: %v", err)
	}
	if flags := ne.Uint16(buf[8:]); flags != freelistFlag {
		return fmt.Errorf("damaged: freelist page %d has type %#x", c.freePgid, flags)
	}
	data := buf[pageHeaderSize:]
	count := uint64(ne.Uint16(buf[10:]))
	if count == 0xFFFF {
		count = ne.Uint64(data)
		data = data[8:]
	}
	if count > uint64(len(data))/8 {
		return fmt.Errorf("damaged: freelist claims %d pages, its page holds %d", count, len(data)/8)
	}
	for i := range count {
		id := ne.Uint64(data[i*8:])
		if id < 2 || id >= c.hw {
			return fmt.Errorf("damaged: free page %d out of range", id)
		}
		if c.free[id] || c.used[id] {
			return fmt.Errorf("damaged: page %d freed twice or free and in use", id)
		}
		c.free[id] = true
	}
	return nil
}

// bucket walks a bucket whose header (and inline page, if any) is v.
func (c *checker) bucket(v []byte, depth int) error {
	if depth > maxDepth {
		return errors.New("buckets nested too deep")
	}
	if len(v) < 16 {
		return errors.New("bucket header too short")
	}
	visit := func(k, v []byte, flags uint32) error {
		if flags&bucketLeafFlag != 0 {
			return c.bucket(v, depth+1)
		}
		return nil
	}
	if root := ne.Uint64(v); root != 0 {
		return c.tree(root, nil, nil, depth, visit)
	}
	inline := v[16:]
	if len(inline) < pageHeaderSize {
		return errors.New("inline bucket too short")
	}
	if flags := ne.Uint16(inline[8:]); flags != leafFlag {
		return fmt.Errorf("inline bucket page has type %#x", flags)
	}
	_, err := c.elements(inline, true, nil, nil, visit)
	return err
}

// tree walks the B+tree page id whose keys must lie in [lo, hi) (nil: unbounded), where lo, when
// set, must be its first key; visit is called for every leaf element.
func (c *checker) tree(id uint64, lo, hi []byte, depth int, visit func(k, v []byte, flags uint32) error) error {
	if depth > maxDepth {
		return errors.New("tree too deep")
	}
	buf, err := c.page(id)
	if err != nil {
		return err
	}
	switch flags := ne.Uint16(buf[8:]); flags {
	case leafFlag:
		_, err = c.elements(buf, true, lo, hi, visit)
	case branchFlag:
		var keys [][]byte
		var kids []uint64
		keys, err = c.elements(buf, false, lo, hi, func(k, v []byte, _ uint32) error {
			kids = append(kids, ne.Uint64(v))
			return nil
		})
		if err == nil && len(keys) == 0 {
			err = fmt.Errorf("page %d: empty branch", id)
		}
		for i := 0; err == nil && i < len(keys); i++ {
			next := hi
			if i+1 < len(keys) {
				next = keys[i+1]
			}
			err = c.tree(kids[i], keys[i], next, depth+1, visit)
		}
	default:
		err = fmt.Errorf("page %d has type %#x in a tree", id, flags)
	}
	if err != nil {
		return fmt.Errorf("page %d: %w", id, err)
	}
	return nil
}

// elements parses the elements of a leaf or branch page held in buf, checking their bounds and
// order, and calls visit with each key and value (a branch element's value is its child's page id).
func (c *checker) elements(buf []byte, leaf bool, lo, hi []byte, visit func(k, v []byte, flags uint32) error) ([][]byte, error) {
	count := int(ne.Uint16(buf[10:]))
	if pageHeaderSize+count*elemSize > len(buf) {
		return nil, fmt.Errorf("%d elements do not fit", count)
	}
	if lo != nil && count == 0 {
		return nil, errors.New("empty non-root page")
	}
	keys := make([][]byte, 0, count)
	for i := range count {
		e := pageHeaderSize + i*elemSize
		var flags uint32
		var pos, ksize, vsize uint64
		var v []byte
		if leaf {
			flags = ne.Uint32(buf[e:])
			pos, ksize, vsize = uint64(ne.Uint32(buf[e+4:])), uint64(ne.Uint32(buf[e+8:])), uint64(ne.Uint32(buf[e+12:]))
			if flags&^bucketLeafFlag != 0 {
				return nil, fmt.Errorf("element %d: flags %#x", i, flags)
			}
		} else {
			pos, ksize = uint64(ne.Uint32(buf[e:])), uint64(ne.Uint32(buf[e+4:]))
			v = buf[e+8 : e+16]
		}
		start := uint64(e) + pos
		if ksize == 0 || start+ksize+vsize > uint64(len(buf)) {
			return nil, fmt.Errorf("element %d out of bounds", i)
		}
		k := buf[start : start+ksize]
		if leaf {
			v = buf[start+ksize : start+ksize+vsize]
		}
		switch {
		case i == 0 && lo != nil && !bytes.Equal(k, lo):
			return nil, fmt.Errorf("first key does not match its parent's")
		case i > 0 && bytes.Compare(keys[i-1], k) >= 0:
			return nil, fmt.Errorf("element %d: keys out of order", i)
		case hi != nil && bytes.Compare(k, hi) >= 0:
			return nil, fmt.Errorf("element %d: key beyond its parent's range", i)
		}
		keys = append(keys, k)
		if err := visit(k, v, flags); err != nil {
			return nil, err
		}
	}
	return slices.Clip(keys), nil
}
