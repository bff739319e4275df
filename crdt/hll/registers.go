package hll

// Registers are an HLL's 16384 register values, one byte each: the state the
// CRDT join works on. The zero value is the empty HLL.
type Registers [NumRegisters]uint8

// Decode returns the registers of an HLL value (ErrWrongType or ErrCorrupt
// when Check refuses it).
func Decode(val []byte) (*Registers, error) {
	var r Registers
	if err := checkHeader(val); err != nil {
		return nil, err
	}
	if _, err := r.mergeValue(val); err != nil {
		return nil, err
	}
	return &r, nil
}

// mergeValue maxes the registers of val (nil: nothing) into r, as hllMerge,
// and reports whether val is dense. On error r may be partly merged.
func (r *Registers) mergeValue(val []byte) (dense bool, err error) {
	if val == nil {
		return false, nil
	}
	if err := checkHeader(val); err != nil {
		return false, err
	}
	regs := val[HeaderSize:]
	if val[4] == encDense {
		for i := range r {
			if v := denseGet(regs, i); v > r[i] {
				r[i] = v
			}
		}
		return true, nil
	}
	ok := walkSparse(regs, func(idx, runlen, val int) {
		for i := idx; i < idx+runlen; i++ {
			if uint8(val) > r[i] {
				r[i] = uint8(val)
			}
		}
	})
	if !ok {
		return false, ErrCorrupt
	}
	return false, nil
}

// Max raises every register of r to o's where o's is greater: the join.
func (r *Registers) Max(o *Registers) {
	for i, v := range o {
		r[i] = max(r[i], v)
	}
}

// Count is the estimated cardinality (hllCount on the registers).
func (r *Registers) Count() uint64 {
	var h histogram
	for _, v := range r {
		h[v&regMax]++
	}
	return h.estimate()
}

// Encode renders r as PFMERGE renders into a missing key: dense if dense is
// set, else through the sparse encoder in register order, which becomes
// dense when a register exceeds 32 or the value would exceed sparseMax
// bytes. The cached cardinality is marked stale. The bytes depend only on
// (r, dense, sparseMax).
func Encode(r *Registers, sparseMax int, dense bool) []byte {
	return r.writeInto(nil, sparseMax, dense)
}
