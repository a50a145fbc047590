/* kefu web chat widget. A shop adds one tag:
 *   <script src="https://RELAY/widget.js" data-key="WIDGET_KEY" [data-group="presales"]
 *           [data-name="..."] [data-welcome="..."] [data-lang="en"]
 *           [data-customer-id="SHOP_ID" data-customer-signature="HMAC_HEX"]></script>
 * A signed-in customer's id and its signature (made by the shop's server with the
 * workspace's identity secret) make their conversations on every channel one contact's.
 * and gets a chat bubble and panel speaking the customer WebSocket protocol
 * (docs/protocol.md) with the relay the script came from.
 *
 * localStorage, per widget key (and signed-in customer), keeps the customer token, the last seq held per
 * conversation (resume points), the messages shown (a reload shows them, then resumes after
 * them), unacknowledged sends (re-sent with the same client_msg_id), receipts and ratings.
 * Untrusted text reaches the page only as text nodes: Markdown is parsed into elements made
 * one by one, never through innerHTML.
 *
 * A page with a Content-Security-Policy must allow the relay in script-src, style-src and
 * connect-src, and img-src the relay and blob:. */
(() => {
  "use strict";
  const me = document.currentScript || [...document.querySelectorAll("script[data-key]")].pop();
  if (!me || window.kefuWidget) return;
  const attr = (name) => (me.getAttribute("data-" + name) || "").trim();
  const KEY = attr("key");
  if (!KEY) return console.error("kefu widget: the script tag needs data-key");
  const GROUP = /^[a-z0-9_-]{1,32}$/.test(attr("group")) ? attr("group") : undefined;
  const NAME = attr("name").replace(/[\x00-\x1f\x7f]/g, "").slice(0, 40) || undefined;
  const CUSTOMER_ID = attr("customer-id").slice(0, 128) || undefined;
  const CUSTOMER_SIGNATURE = (CUSTOMER_ID && /^[0-9a-f]{64}$/.test(attr("customer-signature"))) ? attr("customer-signature") : undefined;
  const BASE = new URL(".", me.src).href.replace(/\/$/, "");
  const MAX_UPLOAD = 10 * 1024 * 1024;
  const zh = !/^en/i.test(attr("lang") || navigator.language || "zh");

  const T = zh ? {
    title: "在线客服", welcome: "您好！欢迎咨询，请问有什么可以帮您？", placeholder: "请输入消息，Enter 发送",
    send: "发送", attach: "发送图片或文件", close: "收起", connecting: "正在连接…",
    reconnecting: "连接已断开，正在重连…", unavailable: "在线客服暂不可用", bot: "智能助手", agent: "客服",
    serving: (n) => n + " 为您服务", joined: (n) => n + " 已接入会话", queued: "正在为您转接人工客服…",
    resolved: "会话已解决，如有问题可继续留言", closed: "会话已结束",
    queue: (p, wait, online) => "排队中，您是第 " + p + " 位" + (wait ? "，预计等待" + wait : "") +
      (online ? "（" + online + " 位客服在线）" : "（客服暂不在线）"),
    minutes: (m) => (m < 1 ? "不到 1 分钟" : "约 " + m + " 分钟"),
    typing: (n) => n + " 正在输入…", sending: "发送中", unread: "未读", read: "已读", failed: "发送失败：",
    tooBig: "文件超过 10 MB，无法发送", uploadFailed: "上传失败", tooLong: "消息太长了",
    rate: "请为本次服务评分", comment: "您的意见（可选）", submit: "提交", thanks: "感谢您的评价！",
    notSent: "未能提交：", offline: "客服暂时不在线。您可以留言，我们会尽快联系您。", leave: "留言内容",
    contact: "电话或邮箱（可选）", leaveSubmit: "提交留言",
    ticket: (id) => "已收到您的留言（工单 #" + id + "），我们会尽快联系您。",
  } : {
    title: "Chat with us", welcome: "Hi! How can we help you today?", placeholder: "Type a message, Enter to send",
    send: "Send", attach: "Send an image or file", close: "Close", connecting: "Connecting…",
    reconnecting: "Connection lost, reconnecting…", unavailable: "Chat is unavailable here", bot: "Assistant",
    agent: "Agent", serving: (n) => n + " is helping you", joined: (n) => n + " joined the chat",
    queued: "Connecting you with a person…", resolved: "Resolved. Write again any time.", closed: "This chat has ended",
    queue: (p, wait, online) => "You are number " + p + " in line" + (wait ? ", about " + wait : "") +
      (online ? " (" + online + " online)" : " (nobody is online right now)"),
    minutes: (m) => (m < 1 ? "under a minute" : m + " min"),
    typing: (n) => n + " is typing…", sending: "Sending", unread: "Sent", read: "Read", failed: "Not sent: ",
    tooBig: "Files over 10 MB cannot be sent", uploadFailed: "Upload failed", tooLong: "That message is too long",
    rate: "How did we do?", comment: "Your comments (optional)", submit: "Submit", thanks: "Thank you for your feedback!",
    notSent: "Not sent: ", offline: "Nobody is online right now. Leave a message and we will get back to you.",
    leave: "Your message", contact: "Phone or e-mail (optional)", leaveSubmit: "Leave message",
    ticket: (id) => "We received your message (ticket #" + id + ") and will get back to you soon.",
  };

  // ---- state, kept per widget key so one shop's key never reads another's data
  // A signed-in customer's state is kept apart from a visitor's and from other customers' on
  // the same browser; the visitor's token is offered once so their chat joins the account.
  const PREFIX = "kefu:" + KEY + ":" + (CUSTOMER_SIGNATURE ? "c:" + CUSTOMER_ID + ":" : "");
  const load = (k, d) => { try { const v = localStorage.getItem(PREFIX + k); return v === null ? d : JSON.parse(v); } catch (e) { return d; } };
  const save = (k) => { try { localStorage.setItem(PREFIX + k, JSON.stringify(S[k])); } catch (e) { /* full, private */ } };
  const visitorToken = () => { try { return JSON.parse(localStorage.getItem("kefu:" + KEY + ":token")) || undefined; } catch (e) { return undefined; } };
  const S = {
    token: load("token", null),
    seqs: load("seqs", {}), // conversation id → highest seq held: the resume points
    history: load("history", []), // the messages shown, oldest first (at most 200)
    outbox: load("outbox", []), // sends not yet acknowledged
    agentRead: load("agentRead", {}), // conversation id → seq the agent read up to
    myRead: load("myRead", {}), // conversation id → seq reported read
    rated: load("rated", {}),
    open: load("open", false),
    conv: null, // the open conversation (ConversationView)
    queue: null, ws: null, ready: false, retries: 0, timer: 0, pinger: 0, nonce: 0, awaitingPong: 0,
    typingOn: false, typingSent: 0, typingStop: 0, agentTyping: 0, readTimer: 0,
    rating: null, leaving: null, ticketFor: {},
  };
  const shown = {}; // "conversation:seq" → element: each stored message once

  // ---- DOM
  const el = (tag, parent, cls, text, props) => {
    const e = Object.assign(document.createElement(tag), props);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  };
  el("link", document.head, "", undefined, { rel: "stylesheet", href: BASE + "/widget.css" });
  const root = el("div", null, "kefu-root", undefined, { id: "kefu-widget" });
  const bubble = el("button", root, "kefu-bubble", "💬", { type: "button", title: T.title });
  const badge = el("span", bubble, "kefu-badge", "", { hidden: true });
  const panel = el("div", root, "kefu-panel", undefined, { hidden: true });
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", T.title);
  const head = el("div", panel, "kefu-head");
  const heading = el("div", head, "kefu-heading");
  el("div", heading, "kefu-title", T.title);
  const agentName = el("div", heading, "kefu-agent-name");
  const closeBtn = el("button", head, "kefu-close", "×", { type: "button", title: T.close });
  const status = el("div", panel, "kefu-status");
  const scroller = el("div", panel, "kefu-scroll");
  el("div", scroller, "kefu-welcome", attr("welcome") || T.welcome);
  const list = el("div", scroller, "kefu-messages");
  list.setAttribute("aria-live", "polite");
  const typing = el("div", panel, "kefu-typing", "", { hidden: true });
  const extra = el("div", panel, "kefu-extra"); // the rating and offline forms
  const progress = el("progress", panel, "kefu-progress", undefined, { max: 1, hidden: true });
  const notice = el("div", panel, "kefu-notice", "", { hidden: true });
  const composer = el("form", panel, "kefu-composer");
  const fileInput = el("input", composer, "kefu-file-input", undefined, { type: "file", hidden: true });
  const attachBtn = el("button", composer, "kefu-attach", "📎", { type: "button", title: T.attach });
  const input = el("textarea", composer, "kefu-input", undefined, { rows: 2, placeholder: T.placeholder });
  el("button", composer, "kefu-send", T.send, { type: "submit" });
  const showNotice = (text) => { notice.textContent = text; notice.hidden = !text; };
  const atBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  const scrollDown = () => { scroller.scrollTop = scroller.scrollHeight; };

  // ---- Markdown: a small safe subset (bold, italic, code, links, lists, line breaks)
  const INLINE = /(`+)([^`]+?)\1|\*\*([^*]+?)\*\*|__([^_]+?)__|\*([^*\s](?:[^*]*?[^*\s])?)\*|\[([^\]]+)\]\(([^)\s]+)\)|(https?:\/\/[^\s<>()（）]*[^\s<>().,;:!?'"，。！？；：（）、])/;
  const text = (parent, t) => parent.appendChild(document.createTextNode(t));
  const inline = (parent, t) => {
    let m;
    while (t && (m = INLINE.exec(t))) {
      if (m.index) text(parent, t.slice(0, m.index));
      if (m[2] !== undefined) el("code", parent, "", m[2]);
      else if (m[3] !== undefined || m[4] !== undefined) inline(el("strong", parent), m[3] || m[4]);
      else if (m[5] !== undefined) inline(el("em", parent), m[5]);
      else {
        const href = m[7] || m[8];
        if (/^(https?:\/\/|mailto:)/i.test(href)) {
          inline(el("a", parent, "", undefined, { href, target: "_blank", rel: "noopener noreferrer nofollow" }), m[6] || m[8]);
        } else text(parent, m[0]);
      }
      t = t.slice(m.index + m[0].length);
    }
    if (t) text(parent, t);
  };
  const markdown = (parent, body) => {
    const lines = body.replace(/\r\n?/g, "\n").split("\n");
    for (let i = 0, first = true; i < lines.length; i++) {
      let m;
      if (/^\s*```/.test(lines[i])) { // a fenced block, verbatim
        const code = [];
        while (++i < lines.length && !/^\s*```/.test(lines[i])) code.push(lines[i]);
        el("code", el("pre", parent), "", code.join("\n"));
        first = true;
        continue;
      }
      if (!first) el("br", parent);
      first = false;
      if ((m = /^#{1,6}\s+(.*)$/.exec(lines[i]))) inline(el("strong", parent), m[1]);
      else if ((m = /^\s*[-*+]\s+(.*)$/.exec(lines[i]))) { text(parent, "• "); inline(parent, m[1]); }
      else if ((m = /^\s*>\s?(.*)$/.exec(lines[i]))) inline(el("span", parent, "kefu-quote"), m[1]);
      else inline(parent, lines[i]);
    }
  };

  // ---- messages
  const fmtSize = (n) => (n < 1024 ? n + " B" : n < 1048576 ? Math.round(n / 1024) + " KB" : (n / 1048576).toFixed(1) + " MB");
  const blobs = {};
  const fetchBlob = (id) => { // files need the customer token, so they come as blob URLs
    if (!blobs[id]) {
      blobs[id] = fetch(BASE + "/api/v1/attachments/" + encodeURIComponent(id), { headers: { Authorization: "Bearer " + S.token } })
        .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.blob(); })
        .then((b) => URL.createObjectURL(b));
      blobs[id].catch(() => delete blobs[id]);
    }
    return blobs[id];
  };
  const attachment = (parent, a) => {
    if (/^image\/(png|jpeg|gif|webp)$/.test(a.content_type)) {
      const img = el("img", parent, "kefu-image", undefined, { alt: a.name });
      img.dataset.id = a.id;
      return fetchBlob(a.id).then((url) => { img.src = url; }, () => img.classList.add("kefu-broken"));
    }
    const file = el("a", parent, "kefu-file", "📄 " + a.name + " (" + fmtSize(a.size) + ")", { href: "#" });
    file.dataset.id = a.id;
    file.addEventListener("click", (e) => {
      e.preventDefault();
      fetchBlob(a.id).then((href) => {
        const link = el("a", document.body, "", undefined, { href, download: a.name });
        link.click();
        link.remove();
      }, () => showNotice(T.uploadFailed));
    });
  };
  const place = (node, conv, seq) => { // after what comes earlier; pending sends stay last
    let before = null;
    for (let c = list.lastElementChild; c; c = c.previousElementSibling) {
      if (c.dataset.seq !== undefined && (+c.dataset.conv < conv || (+c.dataset.conv === conv && +c.dataset.seq < seq))) break;
      before = c;
    }
    list.insertBefore(node, before);
  };
  const render = (m, pending) => {
    const kind = m.author.kind;
    const own = kind === "customer";
    const node = el("div", null, "kefu-msg kefu-msg-" + (own ? "own" : kind) + (pending ? " kefu-pending" : ""));
    if (!own && kind !== "system") el("div", node, "kefu-author", kind === "bot" ? T.bot : m.author.name || T.agent);
    const body = el("div", node, "kefu-body", undefined, { hidden: !m.body });
    if (m.format === "markdown") markdown(body, m.body);
    else { body.classList.add("kefu-plain"); body.textContent = m.body; }
    if (m.attachments && m.attachments.length) {
      const files = el("div", node, "kefu-attachments");
      m.attachments.forEach((a) => attachment(files, a));
    }
    const meta = el("div", node, "kefu-meta");
    el("span", meta, "kefu-time", new Date(m.at || Date.now()).toLocaleTimeString(zh ? "zh-CN" : "en", { hour: "2-digit", minute: "2-digit" }));
    if (own) el("span", meta, "kefu-receipt", pending ? T.sending : T.unread);
    return node;
  };
  const settle = (node, m) => { // the message has its seq now
    node.classList.remove("kefu-pending");
    node.dataset.conv = m.conversation_id;
    node.dataset.seq = m.seq;
    shown[m.conversation_id + ":" + m.seq] = node;
    place(node, m.conversation_id, m.seq);
    receipt(node);
  };
  const hold = (conv, seq) => {
    if ((S.seqs[conv] || 0) >= seq) return;
    S.seqs[conv] = seq;
    const ids = Object.keys(S.seqs).sort((a, b) => a - b);
    while (ids.length > 20) delete S.seqs[ids.shift()];
    save("seqs");
  };
  const remember = (m) => {
    const { conversation_id, seq, author, body, format, at, attachments } = m;
    S.history.push({ conversation_id, seq, author, body, format, at, attachments });
    S.history.sort((a, b) => a.conversation_id - b.conversation_id || a.seq - b.seq);
    S.history.splice(0, S.history.length - 200);
    save("history");
    hold(conversation_id, seq);
  };
  const receipt = (node) => {
    const r = node.querySelector(".kefu-receipt");
    if (!r || node.dataset.seq === undefined) return;
    const read = (S.agentRead[node.dataset.conv] || 0) >= +node.dataset.seq;
    r.textContent = read ? T.read : T.unread;
    r.classList.toggle("kefu-read", read);
  };
  const showMessage = (m) => { // false when it is shown already
    if (shown[m.conversation_id + ":" + m.seq]) return false;
    const follow = atBottom();
    settle(render(m), m);
    if (follow || m.author.kind === "customer") scrollDown();
    return true;
  };
  const systemLine = (words, cls) => {
    const conv = S.conv ? S.conv.id : 0;
    const line = el("div", null, "kefu-system " + cls, words);
    line.dataset.conv = conv;
    line.dataset.seq = (S.seqs[conv] || 0) + 0.5; // after what is held, before what follows
    place(line, conv, +line.dataset.seq);
    if (atBottom()) scrollDown();
  };

  // ---- sending
  const frame = (f) => { if (S.ready) S.ws.send(JSON.stringify(f)); };
  const transmit = (item) => {
    const f = { type: "send", client_msg_id: item.client_msg_id, body: item.body };
    if (item.attachments.length) f.attachments = item.attachments.map((a) => a.id);
    frame(f);
  };
  const showPending = (item) => {
    const node = render({ author: { kind: "customer" }, body: item.body, at: item.at, attachments: item.attachments }, true);
    node.dataset.cmid = item.client_msg_id;
    list.appendChild(node);
  };
  const pendingNode = (item) => list.querySelector('.kefu-pending[data-cmid="' + item.client_msg_id + '"]');
  const queueSend = (body, attachments) => {
    const item = { client_msg_id: "web-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10), body, attachments: attachments || [], at: Date.now() };
    S.outbox.push(item);
    save("outbox");
    showPending(item);
    scrollDown();
    stopTyping();
    if (!S.ws) connect();
    transmit(item); // if not connected now, the welcome sends it
  };
  const takeFromOutbox = (id) => {
    const i = S.outbox.findIndex((o) => o.client_msg_id === id);
    if (i < 0) return null;
    const item = S.outbox.splice(i, 1)[0];
    save("outbox");
    return item;
  };
  const acknowledged = (item, conversation_id, seq, at) => {
    const m = { conversation_id, seq, author: { kind: "customer" }, body: item.body, format: "text", at, attachments: item.attachments };
    const node = pendingNode(item);
    if (shown[conversation_id + ":" + seq]) return node && node.remove();
    remember(m);
    if (node) settle(node, m);
    else showMessage(m);
  };
  composer.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = input.value;
    if (!body.trim()) return;
    if (new TextEncoder().encode(body).length > 32768) return showNotice(T.tooLong);
    showNotice("");
    input.value = "";
    queueSend(body);
  });
  input.addEventListener("keydown", (e) => { // Enter sends, except while an IME composes
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      composer.requestSubmit();
    }
  });
  input.addEventListener("input", () => { // "typing" at most every 3 s, "stopped" 4 s after the last key
    if (!S.ready || !S.conv || S.conv.state !== "assigned") return;
    if (!S.typingOn || Date.now() - S.typingSent > 3000) {
      frame({ type: "typing", active: true });
      S.typingOn = true;
      S.typingSent = Date.now();
    }
    clearTimeout(S.typingStop);
    S.typingStop = setTimeout(stopTyping, 4000);
  });
  const stopTyping = () => {
    clearTimeout(S.typingStop);
    if (S.typingOn) frame({ type: "typing", active: false });
    S.typingOn = false;
  };
  const agentTyping = (on) => {
    clearTimeout(S.agentTyping);
    typing.textContent = on ? T.typing(S.conv && S.conv.assignee ? S.conv.assignee.name : T.agent) : "";
    typing.hidden = !on;
    if (on) S.agentTyping = setTimeout(agentTyping, 15000, false); // in case "stopped" is lost
  };

  // ---- files
  attachBtn.addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    if (file.size > MAX_UPLOAD) return showNotice(T.tooBig);
    if (!S.token) return showNotice(T.connecting);
    showNotice("");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", BASE + "/api/v1/attachments?name=" + encodeURIComponent(file.name));
    xhr.setRequestHeader("Authorization", "Bearer " + S.token);
    progress.value = 0;
    progress.hidden = false;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = e.loaded / e.total; };
    xhr.onloadend = () => {
      progress.hidden = true;
      if (xhr.status === 201) return queueSend("", [JSON.parse(xhr.responseText)]);
      let why = xhr.status ? "HTTP " + xhr.status : "";
      try { why = JSON.parse(xhr.responseText).error.message; } catch (e) { /* not the JSON error body */ }
      showNotice(T.uploadFailed + (why ? ": " + why : ""));
    };
    xhr.send(file);
  });

  // ---- read receipts and the unread badge
  const visible = () => S.open && document.visibilityState === "visible";
  const updateBadge = () => {
    const n = visible() ? 0 : S.history.filter((m) => m.author.kind !== "customer" && m.seq > (S.myRead[m.conversation_id] || 0)).length;
    badge.textContent = n > 99 ? "99+" : n;
    badge.hidden = !n;
  };
  const markRead = () => {
    clearTimeout(S.readTimer);
    S.readTimer = setTimeout(() => {
      if (visible() && S.ready && S.conv && (S.seqs[S.conv.id] || 0) > (S.myRead[S.conv.id] || 0)) {
        S.myRead[S.conv.id] = S.seqs[S.conv.id];
        frame({ type: "read", seq: S.seqs[S.conv.id] });
        save("myRead");
      }
      updateBadge();
    }, 200);
  };
  document.addEventListener("visibilitychange", markRead);

  // ---- header and status
  const updateHeader = () => {
    const c = S.conv;
    const q = c && c.state === "queued" && S.queue && S.queue.conversation_id === c.id ? S.queue : null;
    agentName.textContent = c && c.assignee ? T.serving(c.assignee.name) : c && c.state === "bot" ? T.bot : "";
    status.textContent = !S.ready ? (S.retries ? T.reconnecting : T.connecting)
      : q ? T.queue(q.position, q.estimated_wait_secs != null && T.minutes(Math.ceil(q.estimated_wait_secs / 60)), q.agents_online)
      : c && c.state === "queued" ? T.queued : c && c.state === "resolved" ? T.resolved : "";
    status.hidden = !status.textContent;
    status.classList.toggle("kefu-queue", !!q);
  };

  // ---- the rating and offline forms
  const form = (cls, title, submitText, onSubmit) => {
    const f = el("form", extra, cls);
    el("div", f, cls + "-title", title);
    const fields = el("div", f, "kefu-fields");
    const submit = el("button", f, cls + "-submit", submitText, { type: "submit" });
    const result = el("div", f, cls + "-result");
    f.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!S.ready || submit.disabled) return;
      result.textContent = "";
      result.className = cls + "-result";
      onSubmit({ f, submit, result, failed: cls + "-failed" });
    });
    return { f, fields, submit };
  };
  const showRating = (conv) => {
    if (S.rated[conv] || extra.querySelector(".kefu-rating")) return;
    extra.textContent = "";
    let score = 0;
    const { f, fields, submit } = form("kefu-rating", T.rate, T.submit, (r) => {
      const rate = { type: "rate", conversation_id: conv, score };
      if (comment.value.trim()) rate.comment = comment.value.trim();
      // The relay answers a rating only to refuse it: a ping right after it tells when none came.
      S.rating = Object.assign(r, { conv, score, nonce: ++S.nonce });
      submit.disabled = true;
      frame(rate);
      frame({ type: "ping", nonce: S.rating.nonce });
    });
    f.dataset.conv = conv;
    submit.disabled = true;
    const stars = el("div", fields, "kefu-stars");
    for (let i = 1; i <= 5; i++) {
      el("button", stars, "kefu-star", "★", { type: "button", title: String(i) }).dataset.score = i;
    }
    stars.addEventListener("click", (e) => {
      if (!e.target.dataset.score) return;
      score = +e.target.dataset.score;
      stars.querySelectorAll(".kefu-star").forEach((s) => s.classList.toggle("kefu-on", +s.dataset.score <= score));
      submit.disabled = false;
    });
    const comment = el("textarea", fields, "kefu-rating-comment", undefined, { placeholder: T.comment, maxLength: 1000, rows: 2 });
    scrollDown();
  };
  const answered = (pending, error, done) => { // the relay took (or refused) a form's frame
    if (!error) return done();
    pending.result.textContent = T.notSent + error.message;
    pending.result.className += " " + pending.failed;
    pending.submit.disabled = false;
  };
  const rated = (error) => {
    const r = S.rating;
    S.rating = null;
    answered(r, error, () => {
      S.rated[r.conv] = r.score;
      save("rated");
      r.f.remove();
      systemLine(T.thanks, "kefu-rating-thanks");
    });
  };
  const showOffline = () => {
    if (extra.querySelector(".kefu-offline") || (S.conv && S.ticketFor[S.conv.id])) return;
    extra.textContent = "";
    const { fields } = form("kefu-offline", T.offline, T.leaveSubmit, (r) => {
      if (!body.value.trim()) return;
      const f = { type: "leave_message", body: body.value };
      if (contact.value.trim()) f.contact_info = contact.value.trim();
      S.leaving = r;
      r.submit.disabled = true;
      frame(f);
    });
    const body = el("textarea", fields, "kefu-offline-body", undefined, { placeholder: T.leave, rows: 3, required: true });
    const contact = el("input", fields, "kefu-offline-contact", undefined, { placeholder: T.contact, maxLength: 128 });
  };

  // ---- frames from the relay
  const handlers = {
    welcome(f) {
      const session = f.session;
      if (S.token && session.customer_token !== S.token) { // another contact: forget the old one
        Object.assign(S, { history: [], seqs: {}, agentRead: {}, myRead: {}, rated: {} });
        ["history", "seqs", "agentRead", "myRead", "rated"].forEach(save);
        list.querySelectorAll("[data-seq]").forEach((n) => n.remove());
        Object.keys(shown).forEach((k) => delete shown[k]);
      }
      S.token = session.customer_token;
      save("token");
      Object.assign(S, { ready: true, retries: 0, conv: session.conversation || null, awaitingPong: 0 });
      updateHeader();
      S.outbox.forEach(transmit); // the same client_msg_id: the relay stores each once
      if (S.conv && S.conv.state === "resolved" && S.conv.assignee) showRating(S.conv.id);
      clearInterval(S.pinger);
      S.pinger = setInterval(() => { // a connection that stops answering is replaced
        if (S.awaitingPong) return S.ws.close();
        frame({ type: "ping", nonce: (S.awaitingPong = ++S.nonce) });
      }, 25000);
      markRead();
    },
    ack(a) {
      const item = takeFromOutbox(a.client_msg_id);
      if (item) acknowledged(item, a.conversation_id, a.seq, a.at);
      else hold(a.conversation_id, a.seq);
    },
    message(m) {
      if (m.internal) return;
      const item = m.author.kind === "customer" && m.client_msg_id && takeFromOutbox(m.client_msg_id);
      if (item) return acknowledged(item, m.conversation_id, m.seq, m.at); // stored; its ack was lost
      if (!showMessage(m)) return;
      remember(m);
      if (m.author.kind === "agent") agentTyping(false);
      markRead();
    },
    conversation(f) {
      const c = f.conversation;
      const before = S.conv;
      S.conv = c.state === "closed" ? null : c;
      if (c.state !== "queued") S.queue = null;
      if (f.change === "assigned" && c.assignee && !(before && before.assignee && before.assignee.id === c.assignee.id)) {
        systemLine(T.joined(c.assignee.name), "kefu-joined");
      }
      if (/^(assigned|reopened|opened)$/.test(f.change)) {
        extra.querySelectorAll(f.change === "assigned" ? "form" : ".kefu-rating").forEach((n) => n.remove());
      }
      if (f.change === "closed") systemLine(T.closed, "kefu-closed");
      if ((f.change === "resolved" || f.change === "closed") && c.assignee) showRating(c.id);
      agentTyping(false);
      updateHeader();
      markRead();
    },
    queue(q) {
      S.queue = q;
      updateHeader();
      if (!q.agents_online) showOffline();
      else extra.querySelectorAll(".kefu-offline").forEach((n) => n.remove());
    },
    typing(t) { if (t.author === "agent") agentTyping(t.active); },
    read(r) {
      if (r.reader !== "agent" || (S.agentRead[r.conversation_id] || 0) >= r.seq) return;
      S.agentRead[r.conversation_id] = r.seq;
      save("agentRead");
      list.querySelectorAll(".kefu-msg-own[data-seq]").forEach(receipt);
    },
    ticket(t) {
      if (t.change !== "created") return;
      S.ticketFor[t.ticket.conversation_id] = t.ticket.id;
      S.leaving = null;
      extra.querySelectorAll(".kefu-offline").forEach((n) => n.remove());
      systemLine(T.ticket(t.ticket.id), "kefu-ticket");
    },
    error(e) {
      const item = e.client_msg_id && S.outbox.find((o) => o.client_msg_id === e.client_msg_id);
      if (item) {
        if (/^(rate_limited|internal)$/.test(e.code) || (e.code === "conflict" && !item.retried)) {
          item.retried = true;
          return setTimeout(transmit, 2000, item);
        }
        takeFromOutbox(item.client_msg_id);
        const node = pendingNode(item);
        if (node) {
          node.classList.add("kefu-failed");
          node.querySelector(".kefu-receipt").textContent = T.failed + e.message;
        }
      } else if (S.rating) rated(e);
      else if (S.leaving) {
        answered(S.leaving, e);
        S.leaving = null;
      }
      else console.warn("kefu widget:", e.code, e.message);
    },
    pong(p) {
      if (p.nonce === S.awaitingPong) S.awaitingPong = 0;
      if (S.rating && p.nonce === S.rating.nonce) rated(null);
    },
  };

  // ---- the connection: hello with resume points, reconnect with backoff
  const connect = () => {
    if (S.ws) return;
    clearTimeout(S.timer);
    const ws = (S.ws = new WebSocket(BASE.replace(/^http/, "ws") + "/ws/customer"));
    updateHeader();
    ws.onopen = () => {
      const auth = { kind: "customer", widget_key: KEY, customer_token: S.token || (CUSTOMER_SIGNATURE ? visitorToken() : undefined) || undefined,
        name: NAME, group: GROUP, customer_id: CUSTOMER_SIGNATURE ? CUSTOMER_ID : undefined, customer_signature: CUSTOMER_SIGNATURE };
      const resume = Object.keys(S.seqs).map((id) => ({ conversation_id: +id, after_seq: S.seqs[id] }));
      ws.send(JSON.stringify({ type: "hello", protocol: 1, auth, resume }));
    };
    ws.onmessage = (e) => {
      let f;
      try { f = JSON.parse(e.data); } catch (x) { return; }
      if (handlers[f.type]) handlers[f.type](f);
    };
    ws.onclose = (e) => {
      if (S.ws !== ws) return;
      Object.assign(S, { ws: null, ready: false, typingOn: false });
      clearInterval(S.pinger);
      agentTyping(false);
      if (S.rating) rated({ message: T.reconnecting });
      if (e.code === 4001 || e.code === 4003) { // unknown key, or a page the shop did not allow
        status.textContent = T.unavailable;
        return (status.hidden = false);
      }
      S.timer = setTimeout(connect, Math.min(30000, 1000 * 2 ** S.retries++) * (0.5 + Math.random() / 2));
      updateHeader();
    };
  };
  addEventListener("online", () => { if (!S.ws) { S.retries = 0; connect(); } });

  // ---- opening and closing
  const setOpen = (open) => {
    S.open = open;
    save("open");
    panel.hidden = !open;
    bubble.classList.toggle("kefu-active", open);
    if (open) {
      if (!S.ws) connect();
      scrollDown();
      input.focus();
      markRead();
    }
    updateBadge();
  };
  bubble.addEventListener("click", () => setOpen(!S.open));
  closeBtn.addEventListener("click", () => setOpen(false));

  (document.body ? Promise.resolve() : new Promise((r) => document.addEventListener("DOMContentLoaded", r))).then(() => {
    document.body.appendChild(root);
    // What this browser holds is shown at once; the relay then adds what came since.
    S.history.forEach(showMessage);
    S.outbox.forEach(showPending);
    updateHeader();
    setOpen(S.open);
    // A returning customer connects now (for the badge and pending sends); a new one when
    // opening the panel, so that a page view alone makes no contact.
    if (S.token || S.outbox.length) connect();
  });
  window.kefuWidget = { open: () => setOpen(true), close: () => setOpen(false) };
})();
