//! The per-function rules, path by path: each function reachable from
//! `PyInit_*` and from function pointers in data is followed from its entry
//! through its branches to every `ret` and tail `jmp`, with what is known
//! of the registers and the stack on that path.
//!
//! What a path state knows: `rsp` (and any register copied from it) as an
//! offset from the entry `rsp` — or from the last `and rsp, -16` —, the
//! stack slots the function pushed or stored to, which callee-saved
//! registers still hold the caller's value (and where one was first
//! changed), which registers were written since the last call (to tell
//! argument registers that were set), addresses of local data loaded with
//! `lea`/`mov`, and 32-bit loads from 64-bit slots.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register,
};

use super::object::{Obj, Place};
use super::signatures::{self, Param};
use super::{Raw, Rule};
use crate::platform::Target;

/// At most this many path states per function: a loop that keeps moving
/// `rsp` would otherwise never end.
const MAX_STATES: usize = 20_000;

/// Register file slots: 0–15 the GPRs (by number), 16–31 xmm0–15.
const XMM: usize = 16;
const RAX: usize = 0;
const RCX: usize = 1;
const RDX: usize = 2;
const RSP: usize = 4;
const RBP: usize = 5;
const RSI: usize = 6;
const RDI: usize = 7;

const GPR_NAMES: [&str; 16] =
    ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

/// A stack address: offset from a base (0: the entry `rsp`; otherwise the
/// `and rsp, -16` at that offset + 1, whose result is 16-byte aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Sp {
    base: u64,
    off: i64,
}

/// What a register holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Val {
    /// The caller's value of register `n`.
    Entry(u8),
    /// A stack address.
    Stack(Sp),
    /// The address of a place in this object.
    Addr(usize, u64),
    /// Something else.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    regs: [Val; 32],
    /// For each register: where it was first changed from the caller's value.
    dirty: [Option<u64>; 32],
    /// Stack slots written on this path: what they hold and their size.
    slots: BTreeMap<Sp, (Val, u32)>,
    /// GPRs written since the entry or the last call (bit per number).
    written: u32,
    /// GPRs last written by a 32-bit load from a 64-bit slot, and where.
    truncated: BTreeMap<usize, u64>,
}

/// How a function is reached, which says what its entry registers hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Entry {
    /// `PyInit_*`: called with no arguments.
    Init,
    /// Called by CPython or this module with arguments.
    Function,
}

/// What the check needs from the tables side: where a `PyModuleDef` was
/// handed to `PyModule_Create2` / `PyModuleDef_Init`.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    pub raws: Vec<Raw>,
    pub moduledefs: BTreeSet<(usize, u64)>,
}

/// The callee-saved register slots of `target`'s ABI.
fn callee_saved(target: Target) -> Vec<usize> {
    let mut regs = vec![3, 5, 12, 13, 14, 15];
    if target == Target::Windows {
        regs.extend([RSI, RDI]);
        regs.extend((6..16).map(|x| XMM + x));
    }
    regs
}

fn reg_name(slot: usize) -> String {
    if slot < XMM {
        GPR_NAMES[slot].to_string()
    } else {
        format!("xmm{}", slot - XMM)
    }
}

fn slot_of(reg: Register) -> Option<usize> {
    if reg.is_gpr() {
        Some(reg.full_register().number())
    } else if reg.is_xmm() || reg.is_ymm() || reg.is_zmm() {
        Some(reg.number()).filter(|n| *n < 16).map(|n| XMM + n)
    } else {
        None
    }
}

/// Runs the per-function rules over every reachable function of `obj`;
/// `qword_data` says whether a place in a data section was declared 64-bit.
pub(crate) fn check(obj: &Obj, qword_data: &dyn Fn(usize, u64) -> bool) -> Flow {
    let mut entries: Vec<((usize, u64), Entry)> = Vec::new();
    for (name, &(sec, off)) in &obj.symbols {
        if name.starts_with("PyInit_") && obj.sections[sec].code {
            entries.push(((sec, off), Entry::Init));
        }
    }
    for section in obj.sections.iter().filter(|s| !s.code) {
        for (_, place) in section.relocations.values() {
            if let Place::Local(sec, off) = place {
                if obj.sections[*sec].code {
                    entries.push(((*sec, *off), Entry::Function));
                }
            }
        }
    }
    // Direct calls inside the object: their targets are functions too (a
    // `jmp` to one is a tail call).
    let mut starts: BTreeSet<(usize, u64)> = entries.iter().map(|e| e.0).collect();
    for (sec, section) in obj.sections.iter().enumerate().filter(|(_, s)| s.code) {
        let mut decoder = Decoder::with_ip(64, &section.data, 0, DecoderOptions::NONE);
        for ins in &mut decoder {
            if ins.flow_control() == FlowControl::Call
                && ins.op0_kind() == OpKind::NearBranch64
                && obj.relocation_in(sec, ins.ip(), ins.next_ip()).is_none()
            {
                starts.insert((sec, ins.near_branch_target()));
            }
        }
    }
    let mut checker = Checker { obj, qword_data, starts, flow: Flow::default(), info: InstructionInfoFactory::new() };
    let mut done = HashSet::new();
    let mut queue = entries;
    while let Some((start, kind)) = queue.pop() {
        if !done.insert(start) {
            continue;
        }
        for callee in checker.function(start, kind) {
            queue.push((callee, Entry::Function));
        }
    }
    checker.flow
}

struct Checker<'a> {
    obj: &'a Obj,
    qword_data: &'a dyn Fn(usize, u64) -> bool,
    starts: BTreeSet<(usize, u64)>,
    flow: Flow,
    info: InstructionInfoFactory,
}

impl Checker<'_> {
    fn report(&mut self, rule: Rule, sec: usize, ins: &Instruction, message: String) {
        let raw = Raw {
            rule,
            section: self.obj.sections[sec].name.clone(),
            offset: ins.ip(),
            disassembly: format!("{:?}", ins.mnemonic()).to_lowercase(),
            message,
        };
        if !self.flow.raws.contains(&raw) {
            self.flow.raws.push(raw);
        }
    }

    /// Reports at `site` (an instruction offset) rather than the current one.
    fn report_at(&mut self, rule: Rule, sec: usize, site: u64, message: String) {
        let data = &self.obj.sections[sec].data;
        let ins = Decoder::with_ip(64, data.get(site as usize..).unwrap_or(&[]), site, DecoderOptions::NONE).decode();
        self.report(rule, sec, &ins, message);
    }

    /// Follows one function; returns the local functions it calls.
    fn function(&mut self, (sec, start): (usize, u64), kind: Entry) -> Vec<(usize, u64)> {
        let target = self.obj.target;
        let mut regs = [Val::Unknown; 32];
        for (i, r) in regs.iter_mut().enumerate() {
            *r = Val::Entry(i as u8);
        }
        regs[RSP] = Val::Stack(Sp { base: 0, off: 0 });
        let args: &[usize] = if target == Target::Windows { &[RCX, RDX, 8, 9] } else { &[RDI, RSI, RDX, RCX, 8, 9] };
        let written = match kind {
            Entry::Init => 0,
            Entry::Function => args.iter().fold(0, |m, a| m | 1 << a),
        };
        let state = State { regs, dirty: [None; 32], slots: BTreeMap::new(), written, truncated: BTreeMap::new() };
        let mut callees = Vec::new();
        let mut seen: HashSet<(u64, State)> = HashSet::new();
        let mut work = vec![(start, state)];
        let data = &self.obj.sections[sec].data;
        while let Some((ip, state)) = work.pop() {
            if seen.len() >= MAX_STATES || !seen.insert((ip, state.clone())) {
                continue;
            }
            let Some(bytes) = data.get(ip as usize..) else { continue };
            let ins = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE).decode();
            if ins.is_invalid() {
                continue;
            }
            let mut state = state;
            let reloc = self.obj.relocation_in(sec, ins.ip(), ins.next_ip()).map(|(_, p)| p.clone());
            match ins.flow_control() {
                FlowControl::Return => self.exit(sec, &ins, &state, "returns"),
                FlowControl::Call | FlowControl::IndirectCall => {
                    let callee = match (&reloc, ins.op0_kind()) {
                        (Some(p), _) => Some(p.clone()),
                        (None, OpKind::NearBranch64) => Some(Place::Local(sec, ins.near_branch_target())),
                        _ => None,
                    };
                    if let Some(Place::Local(s, o)) = &callee {
                        if self.obj.sections[*s].code {
                            callees.push((*s, *o));
                        }
                    }
                    self.call(sec, &ins, &state, callee.as_ref());
                    after_call(&mut state, target);
                    work.push((ins.next_ip(), state));
                }
                FlowControl::UnconditionalBranch | FlowControl::IndirectBranch => {
                    let to = match (&reloc, ins.op0_kind()) {
                        (Some(Place::Local(s, o)), OpKind::NearBranch64) if *s == sec => Some(*o),
                        (None, OpKind::NearBranch64) => Some(ins.near_branch_target()),
                        _ => None,
                    };
                    match to {
                        Some(to) if !self.starts.contains(&(sec, to)) || to == start => work.push((to, state)),
                        _ if reloc.is_some() || to.is_some() => self.exit(sec, &ins, &state, "tail-calls"),
                        // A jump through a register: a table this check cannot follow.
                        _ => {}
                    }
                }
                FlowControl::ConditionalBranch => {
                    step(&mut state, &ins, sec, self.obj, self.qword_data, &mut self.info);
                    work.push((ins.near_branch_target(), state.clone()));
                    work.push((ins.next_ip(), state));
                }
                FlowControl::Interrupt | FlowControl::Exception => {
                    if ins.mnemonic() == Mnemonic::Syscall {
                        work.push((ins.next_ip(), state));
                    }
                }
                _ => {
                    step(&mut state, &ins, sec, self.obj, self.qword_data, &mut self.info);
                    work.push((ins.next_ip(), state));
                }
            }
        }
        callees
    }

    /// At a `ret` or a tail call: every callee-saved register holds the caller's value.
    fn exit(&mut self, sec: usize, ins: &Instruction, state: &State, how: &str) {
        let target = self.obj.target;
        for reg in callee_saved(target) {
            if state.regs[reg] == Val::Entry(reg as u8) {
                continue;
            }
            let name = reg_name(reg);
            let message = format!(
                "{name} is callee-saved on {} and this changes it, but on some path the function {how} \
                 without restoring it: save it first (push/pop, or a store and a load) or use a scratch register",
                target.name()
            );
            match state.dirty[reg] {
                Some(site) => self.report_at(Rule::CalleeSavedNotRestored, sec, site, message),
                None => self.report(Rule::CalleeSavedNotRestored, sec, ins, message),
            }
        }
    }

    fn call(&mut self, sec: usize, ins: &Instruction, state: &State, callee: Option<&Place>) {
        let target = self.obj.target;
        let name = match callee {
            Some(Place::External(n)) => Some(n.as_str()),
            Some(Place::Local(s, o)) => self.obj.symbol_at(*s, *o),
            None => None,
        };
        let called = name.map_or("the callee".to_string(), |n| format!("`{n}`"));
        if let Val::Stack(sp) = state.regs[RSP] {
            let aligned_at = if sp.base == 0 { sp.off + 8 } else { sp.off };
            let off = aligned_at.rem_euclid(16);
            if off != 0 {
                self.report(
                    Rule::MisalignedCall,
                    sec,
                    ins,
                    format!(
                        "rsp is {} bytes off 16-byte alignment at this call to {called}: the stack must be 16-byte \
                         aligned at every call; adjust the frame (sub rsp) or the pushes by {}",
                        off,
                        16 - off
                    ),
                );
            }
            if target == Target::Windows {
                let top = sp.off + 32;
                let clash = state.slots.keys().any(|s| s.base == sp.base && s.off >= sp.off && s.off < top)
                    || (sp.base == 0 && top > 0);
                if clash {
                    self.report(
                        Rule::MissingShadowSpace,
                        sec,
                        ins,
                        format!(
                            "no 32-byte shadow space below this call to {called}: on Windows the callee may \
                             overwrite the 32 bytes at [rsp] and above, which hold this function's data here; \
                             reserve 32 more bytes (sub rsp) below your locals (FUNCTION_BEGIN does)"
                        ),
                    );
                }
            }
        }
        let Some(Place::External(name)) = callee else { return };
        if name == "PyModule_Create2" || name == "PyModuleDef_Init" {
            let first = if target == Target::Windows { RCX } else { RDI };
            if let Val::Addr(s, o) = state.regs[first] {
                self.flow.moduledefs.insert((s, o));
            }
        }
        let Some(signature) = signatures::signature(name) else { return };
        let registers = signature.integer_registers(target);
        let set = |r: usize| state.written & (1 << r) != 0;
        if target == Target::Windows {
            if let Some(&(first, _)) = registers.first() {
                let first = first.number();
                if !set(first) && (set(RDI) || set(RSI)) {
                    let wrong = if set(RDI) { "rdi" } else { "rsi" };
                    self.report(
                        Rule::SysvArgumentsOnWin64,
                        sec,
                        ins,
                        format!(
                            "`{name}` takes its first argument in {} on Windows, which was not set; {wrong} was, \
                             as System V would pass it: use rcx, rdx, r8, r9 (ARG1..ARG4 in wheelwright.inc)",
                            GPR_NAMES[first]
                        ),
                    );
                }
            }
        } else if signature.variadic && !set(RAX) {
            self.report(
                Rule::VariadicAlNotSet,
                sec,
                ins,
                format!(
                    "`{name}` is variadic: System V wants al = the number of vector registers used, and al was \
                     not set before this call; xor eax, eax (or use PYCALL_VARARGS)"
                ),
            );
        }
        for (reg, param) in registers {
            if !param.is_64_bit(target) {
                continue;
            }
            if let Some(&site) = state.truncated.get(&reg.number()) {
                let what = match param {
                    Param::Long => "a C long (64 bits here)",
                    Param::Pointer => "a pointer",
                    _ => "a 64-bit integer",
                };
                self.report_at(
                    Rule::TruncatedArgument,
                    sec,
                    site,
                    format!(
                        "a 32-bit load from a 64-bit slot into {}, which passes {what} to `{name}`: the upper \
                         32 bits are lost; load the whole register (mov {}, qword [...])",
                        GPR_NAMES[reg.number()],
                        GPR_NAMES[reg.number()]
                    ),
                );
            }
        }
    }
}

/// What a call leaves: the caller-saved registers unknown, no argument set.
fn after_call(state: &mut State, target: Target) {
    let saved = callee_saved(target);
    for reg in 0..32 {
        if reg != RSP && !saved.contains(&reg) {
            state.regs[reg] = Val::Unknown;
        }
    }
    state.written = 0;
    state.truncated.clear();
}

/// A memory operand's stack address, when its base is a known stack address.
fn stack_address(state: &State, ins: &Instruction) -> Option<Sp> {
    if ins.memory_index() != Register::None {
        return None;
    }
    let base = slot_of(ins.memory_base())?;
    match state.regs[base] {
        Val::Stack(sp) => Some(Sp { base: sp.base, off: sp.off.wrapping_add(ins.memory_displacement64() as i64) }),
        _ => None,
    }
}

fn set_reg(state: &mut State, reg: usize, val: Val, ip: u64) {
    state.regs[reg] = val;
    if val == Val::Entry(reg as u8) {
        state.dirty[reg] = None;
    } else if state.dirty[reg].is_none() {
        state.dirty[reg] = Some(ip);
    }
    if reg < XMM {
        state.written |= 1 << reg;
        state.truncated.remove(&reg);
    }
}

fn adjust(val: Val, by: i64) -> Val {
    match val {
        Val::Stack(sp) => Val::Stack(Sp { base: sp.base, off: sp.off + by }),
        _ => Val::Unknown,
    }
}

/// The effect of one (non-branching) instruction on the path state.
fn step(
    state: &mut State,
    ins: &Instruction,
    sec: usize,
    obj: &Obj,
    qword_data: &dyn Fn(usize, u64) -> bool,
    info: &mut InstructionInfoFactory,
) {
    let ip = ins.ip();
    let op_reg = |n: u32| if ins.op_kind(n) == OpKind::Register { slot_of(ins.op_register(n)) } else { None };
    let imm = |n: u32| match ins.op_kind(n) {
        OpKind::Immediate8
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32
        | OpKind::Immediate32to64
        | OpKind::Immediate64 => Some(ins.immediate(n) as i64),
        _ => None,
    };
    let reloc = obj.relocation_in(sec, ins.ip(), ins.next_ip()).map(|(_, p)| p.clone());
    match ins.mnemonic() {
        Mnemonic::Push => {
            let val = op_reg(0).filter(|_| ins.op0_register().is_gpr64()).map_or(Val::Unknown, |r| state.regs[r]);
            let rsp = adjust(state.regs[RSP], -8);
            if let Val::Stack(sp) = rsp {
                state.slots.insert(sp, (val, 8));
            }
            state.regs[RSP] = rsp;
            return;
        }
        Mnemonic::Pop => {
            let val = match state.regs[RSP] {
                Val::Stack(sp) => state.slots.get(&sp).map_or(Val::Unknown, |v| v.0),
                _ => Val::Unknown,
            };
            state.regs[RSP] = adjust(state.regs[RSP], 8);
            if let Some(r) = op_reg(0) {
                set_reg(state, r, val, ip);
            }
            return;
        }
        Mnemonic::Leave => {
            let rsp = state.regs[RBP];
            let val = match rsp {
                Val::Stack(sp) => state.slots.get(&sp).map_or(Val::Unknown, |v| v.0),
                _ => Val::Unknown,
            };
            state.regs[RSP] = adjust(rsp, 8);
            set_reg(state, RBP, val, ip);
            return;
        }
        Mnemonic::Sub | Mnemonic::Add if op_reg(0) == Some(RSP) => {
            let by = imm(1).map(|v| if ins.mnemonic() == Mnemonic::Sub { -v } else { v });
            state.regs[RSP] = by.map_or(Val::Unknown, |by| adjust(state.regs[RSP], by));
            return;
        }
        Mnemonic::And if op_reg(0) == Some(RSP) => {
            state.regs[RSP] = match imm(1) {
                Some(mask) if mask < 0 && mask & 15 == 0 => Val::Stack(Sp { base: ip + 1, off: 0 }),
                _ => Val::Unknown,
            };
            return;
        }
        Mnemonic::Lea => {
            if let Some(dst) = op_reg(0) {
                let val = if ins.is_ip_rel_memory_operand() {
                    match &reloc {
                        Some(Place::Local(s, o)) => Val::Addr(*s, *o),
                        None => place_of(obj, sec, ins.ip_rel_memory_address())
                            .map_or(Val::Unknown, |(s, o)| Val::Addr(s, o)),
                        _ => Val::Unknown,
                    }
                } else {
                    stack_address(state, ins).map_or(Val::Unknown, Val::Stack)
                };
                if dst == RSP {
                    state.regs[RSP] = val;
                } else {
                    set_reg(state, dst, val, ip);
                }
                return;
            }
        }
        Mnemonic::Mov
        | Mnemonic::Movaps
        | Mnemonic::Movups
        | Mnemonic::Movdqa
        | Mnemonic::Movdqu
        | Mnemonic::Movapd
        | Mnemonic::Movupd => {
            let size = ins.memory_size().size() as u32;
            match (ins.op0_kind(), ins.op1_kind()) {
                (OpKind::Register, OpKind::Register) => {
                    if let (Some(dst), Some(src)) = (op_reg(0), op_reg(1)) {
                        let full = ins.op0_register().is_gpr64() || dst >= XMM;
                        let val = if full { state.regs[src] } else { Val::Unknown };
                        if dst == RSP {
                            state.regs[RSP] = val;
                        } else {
                            set_reg(state, dst, val, ip);
                        }
                        return;
                    }
                }
                (OpKind::Memory, OpKind::Register) => {
                    if let (Some(at), Some(src)) = (stack_address(state, ins), op_reg(1)) {
                        let full = (src < XMM && size == 8) || (src >= XMM && size == 16);
                        state.slots.insert(at, (if full { state.regs[src] } else { Val::Unknown }, size));
                        return;
                    }
                }
                (OpKind::Register, OpKind::Memory) => {
                    if let Some(dst) = op_reg(0) {
                        let slot = stack_address(state, ins).and_then(|at| state.slots.get(&at).copied());
                        let val = match slot {
                            Some((v, s)) if s == size && (size == 8 || size == 16) => v,
                            _ => Val::Unknown,
                        };
                        let from_qword = size == 4
                            && dst < XMM
                            && ins.op0_register().is_gpr32()
                            && match slot {
                                Some((_, s)) => s == 8,
                                None if ins.is_ip_rel_memory_operand() => match &reloc {
                                    Some(Place::Local(s, o)) => qword_data(*s, *o),
                                    None => place_of(obj, sec, ins.ip_rel_memory_address())
                                        .is_some_and(|(s, o)| qword_data(s, o)),
                                    _ => false,
                                },
                                None => false,
                            };
                        if dst == RSP {
                            state.regs[RSP] = Val::Unknown;
                        } else {
                            set_reg(state, dst, val, ip);
                        }
                        if from_qword {
                            state.truncated.insert(dst, ip);
                        }
                        return;
                    }
                }
                (OpKind::Register, OpKind::Immediate64) => {
                    if let (Some(dst), Some(Place::Local(s, o))) = (op_reg(0), &reloc) {
                        set_reg(state, dst, Val::Addr(*s, *o), ip);
                        return;
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
    // Anything else: what it writes is unknown afterwards.
    let info = info.info(ins);
    let mut writes: Vec<usize> = Vec::new();
    for used in info.used_registers() {
        if matches!(
            used.access(),
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        ) {
            if let Some(r) = slot_of(used.register()) {
                writes.push(r);
            }
        }
    }
    let stores = info.used_memory().iter().any(|m| {
        matches!(m.access(), OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite)
    });
    if stores {
        if let Some(at) = stack_address(state, ins) {
            state.slots.insert(at, (Val::Unknown, ins.memory_size().size() as u32));
        }
    }
    for r in writes {
        if r == RSP {
            state.regs[RSP] = Val::Unknown;
        } else {
            set_reg(state, r, Val::Unknown, ip);
        }
    }
}

/// An address in the object's address space → (section, offset).
fn place_of(obj: &Obj, from: usize, address: u64) -> Option<(usize, u64)> {
    let own = &obj.sections[from];
    // ELF and COFF sections all start at 0: an address without a
    // relocation is in the instruction's own section.
    if obj.target != Target::Macos {
        return Some((from, address)).filter(|(_, a)| *a < own.data.len() as u64);
    }
    obj.sections
        .iter()
        .position(|s| address >= s.address && address < s.address + s.data.len().max(1) as u64)
        .map(|i| (i, address - obj.sections[i].address))
}
