package nbdwire

// Magic numbers.
const (
	NBDMagic          uint64 = 0x4e42444d41474943 // "NBDMAGIC"
	IHaveOpt          uint64 = 0x49484156454F5054 // "IHAVEOPT"
	OptionReplyMagic  uint64 = 0x3e889045565a9
	RequestMagic      uint32 = 0x25609513
	ExtRequestMagic   uint32 = 0x21e41c71
	SimpleReplyMagic  uint32 = 0x67446698
	StructReplyMagic  uint32 = 0x668e33ef
	ExtReplyMagic     uint32 = 0x6e8a278c
	DefaultPort              = 10809
	MaxStringLength          = 4096     // spec limit for names, messages
	MaxOptionLength          = 64 << 10 // what we accept for one option's data
	DefaultMaxPayload        = 32 << 20 // 2^25, the portable payload limit
)

// Handshake flags (server, 16 bits).
const (
	FlagFixedNewstyle uint16 = 1 << 0
	FlagNoZeroes      uint16 = 1 << 1
)

// Client flags (32 bits).
const (
	FlagCFixedNewstyle uint32 = 1 << 0
	FlagCNoZeroes      uint32 = 1 << 1
)

// Transmission flags (16 bits).
const (
	FlagHasFlags           uint16 = 1 << 0
	FlagReadOnly           uint16 = 1 << 1
	FlagSendFlush          uint16 = 1 << 2
	FlagSendFUA            uint16 = 1 << 3
	FlagRotational         uint16 = 1 << 4
	FlagSendTrim           uint16 = 1 << 5
	FlagSendWriteZeroes    uint16 = 1 << 6
	FlagSendDF             uint16 = 1 << 7
	FlagCanMultiConn       uint16 = 1 << 8
	FlagSendResize         uint16 = 1 << 9
	FlagSendCache          uint16 = 1 << 10
	FlagSendFastZero       uint16 = 1 << 11
	FlagBlockStatusPayload uint16 = 1 << 12
)

// Option types.
const (
	OptExportName      uint32 = 1
	OptAbort           uint32 = 2
	OptList            uint32 = 3
	OptStartTLS        uint32 = 5
	OptInfo            uint32 = 6
	OptGo              uint32 = 7
	OptStructuredReply uint32 = 8
	OptListMetaContext uint32 = 9
	OptSetMetaContext  uint32 = 10
	OptExtendedHeaders uint32 = 11
)

// Option reply types.
const (
	RepAck              uint32 = 1
	RepServer           uint32 = 2
	RepInfo             uint32 = 3
	RepMetaContext      uint32 = 4
	repErr              uint32 = 1 << 31
	RepErrUnsup                = repErr + 1
	RepErrPolicy               = repErr + 2
	RepErrInvalid              = repErr + 3
	RepErrPlatform             = repErr + 4
	RepErrTLSReqd              = repErr + 5
	RepErrUnknown              = repErr + 6
	RepErrShutdown             = repErr + 7
	RepErrBlockSizeReqd        = repErr + 8
	RepErrTooBig               = repErr + 9
	RepErrExtHeaderReqd        = repErr + 10
)

// IsRepError reports whether an option reply type is an error.
func IsRepError(t uint32) bool { return t&repErr != 0 }

// Info types (NBD_REP_INFO).
const (
	InfoExport      uint16 = 0
	InfoName        uint16 = 1
	InfoDescription uint16 = 2
	InfoBlockSize   uint16 = 3
)

// Command types.
const (
	CmdRead        uint16 = 0
	CmdWrite       uint16 = 1
	CmdDisc        uint16 = 2
	CmdFlush       uint16 = 3
	CmdTrim        uint16 = 4
	CmdCache       uint16 = 5
	CmdWriteZeroes uint16 = 6
	CmdBlockStatus uint16 = 7
)

// Command flags.
const (
	CmdFlagFUA        uint16 = 1 << 0
	CmdFlagNoHole     uint16 = 1 << 1
	CmdFlagDF         uint16 = 1 << 2
	CmdFlagReqOne     uint16 = 1 << 3
	CmdFlagFastZero   uint16 = 1 << 4
	CmdFlagPayloadLen uint16 = 1 << 5
)

// Reply flags and structured reply types.
const (
	ReplyFlagDone uint16 = 1 << 0

	ReplyTypeNone           uint16 = 0
	ReplyTypeOffsetData     uint16 = 1
	ReplyTypeOffsetHole     uint16 = 2
	ReplyTypeBlockStatus    uint16 = 5
	ReplyTypeBlockStatusExt uint16 = 6
	ReplyTypeError          uint16 = 1<<15 + 1
	ReplyTypeErrorOffset    uint16 = 1<<15 + 2
)

// IsErrorChunk reports whether a structured reply type is an error chunk.
func IsErrorChunk(t uint16) bool { return t&(1<<15) != 0 }

// Error values (the reply's error field).
const (
	EPERM     uint32 = 1
	EIO       uint32 = 5
	ENOMEM    uint32 = 12
	EINVAL    uint32 = 22
	ENOSPC    uint32 = 28
	EOVERFLOW uint32 = 75
	ENOTSUP   uint32 = 95
	ESHUTDOWN uint32 = 108
)

// base:allocation status flags.
const (
	StateHole uint32 = 1 << 0
	StateZero uint32 = 1 << 1
)

// Metadata context names this codebase knows.
const (
	ContextBaseAllocation = "base:allocation"
	ContextAllocDepth     = "qemu:allocation-depth"
)

// CommandName returns a printable name of a command type, for logs.
func CommandName(t uint16) string {
	switch t {
	case CmdRead:
		return "read"
	case CmdWrite:
		return "write"
	case CmdDisc:
		return "disc"
	case CmdFlush:
		return "flush"
	case CmdTrim:
		return "trim"
	case CmdCache:
		return "cache"
	case CmdWriteZeroes:
		return "write-zeroes"
	case CmdBlockStatus:
		return "block-status"
	}
	return "unknown"
}
