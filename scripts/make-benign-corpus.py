#!/usr/bin/env python3
"""Writes Tests/Corpora/benign.jsonl: realistic traffic of the quiz application Rampart
fronts, of the kinds that trip WAFs (SQL-like English, maths, code and markdown in the
fields that carry them, GraphQL, nested JSON, URLs and base64, Norwegian text, API client
user agents, PUT/PATCH/DELETE). Every phrase and template here is our own. The records use
the CRS corpus record format, expect "benign". Deterministic: same output on every run.

    python3 scripts/make-benign-corpus.py [OUT]
"""
import base64, json, random, sys, urllib.parse

random.seed(20261121)
out = sys.argv[1] if len(sys.argv) > 1 else "Tests/Corpora/benign.jsonl"

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
AGENTS = [BROWSER,
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
          "okhttp/4.12.0", "python-requests/2.32.3", "axios/1.7.7", "curl/8.5.0", "PostmanRuntime/7.42.0",
          "Go-http-client/2.0", "Dart/3.5 (dart:io)", "Apache-HttpClient/5.3 (Java/21.0.5)", "QuizApp/3.4.1 (Android 14; Pixel 8)",
          "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "insomnia/10.1.1"]

SEARCHES = [
    "select the best union plan", "how to select from a list of options", "union of two sets", "drop shipping basics",
    "where is the table of contents", "order by date", "update my profile picture", "delete my account", "insert a picture into a question",
    "O'Brien's quiz", "rock 'n' roll history", "don't stop believing", "it's a trap", "who's on first", "teachers' favourite quizzes",
    "1=1 in boolean algebra", "prove that 1+1=2", "x + 1 = 1 + x", "2 < 3 and 3 > 2", "a <= b or b <= a", "if x > 5 then y = 2",
    "sin(x) + cos(x)", "f(x) = x^2", "log(100) = 2", "sqrt(16) = 4", "the sum of 1, 2 and 3", "50% of 80", "3/4 + 1/4",
    "Hva er hovedstaden i Norge?", "Blåbærsyltetøy og vafler", "Hvordan går det med deg?", "Kjøttkaker med brun saus", "Ærlig talt, øvelse gjør mester",
    "Fjell og fjorder i Vestland", "Hvem skrev Et dukkehjem?", "Nordlys over Tromsø", "Grunnloven av 1814", "Ski-VM i Trondheim",
    "java interview questions", "python list comprehension", "what is a null pointer", "sql joins explained", "css grid vs flexbox",
    "how do I use git rebase", "bash for loop", "javascript closures quiz", "react hooks useEffect", "kotlin coroutines",
    "cats & dogs", "salt & pepper", "Q&A session", "R&D budget", "Tom & Jerry trivia", "news & time", "copy & paste tips",
    "C# vs Java", "C++ templates", "node.js event loop", "what does e.g. mean", "i.e. versus e.g.", "Mr. & Mrs. Smith",
    "100% free quizzes", "top 10 movies of 2024", "best quiz for kids (age 8-10)", "capital cities: Europe", "history -- world war II",
    "what's new?", "\"exact phrase\" search", "title: intro to chemistry", "author:nordmann", "tags: math, algebra",
    "semicolons; commas, and periods.", "the end; or is it?", "yes/no questions", "true or false", "either/or",
    "select all that apply", "from A to Z", "drop the mic", "table tennis rules", "case study: marketing", "when then else",
    "between a rock and a hard place", "like a boss", "is it null or void", "having fun with fractions", "group by topic",
    "char limit for answers", "concat strings in excel", "sleep science quiz", "benchmark results 2024", "version history",
    "user guide", "database basics", "schema.org markup", "information about the quiz", "execute a plan", "declare independence",
    "waiting for delay of flight", "exec summary", "shutdown procedure for a laptop", "truncate a decimal", "alter ego",
    "create a quiz", "grant application tips", "revoke access", "merge two quizzes", "load data from spreadsheet", "rename a folder",
    "<3 love quizzes", "a -> b implies not b -> not a", "x => x * 2", "<b>bold</b> text in answers", "use the <em> tag",
    "1 < 2 > 0", "score >= 80", "age != 18", "price = $5", "$100 budget", "#hashtag quiz", "@mention a friend",
    "email me at ola@example.no", "call 555-0100", "Room 101", "Chapter 3.2", "v2.0 release notes", "~/Documents folder",
    "../ relative paths in html", "c:\\users\\ola", "/usr/bin explained", "path/to/file", "what is /etc used for",
    "cat videos", "ls and cd commands explained", "ping pong", "find my quizzes", "echo chamber", "time management", "more quizzes like this",
    "python tutorial for beginners", "perl regex basics", "ruby on rails", "php arrays", "lua tables", "bash scripting", "powershell tips",
]

TOPICS = ["Norsk historie", "Algebra", "Kjemi", "Verdensgeografi", "Programmering", "Musikk", "Film", "Fotball", "Biologi", "Kunst"]
NAMES = ["Ola Nordmann", "Kari Nordmann", "Åse Bråten", "Jørgen Ødegård", "Siri Ås", "Lars Øvrebø", "Emma Johansen", "Noah Hansen", "Mia O'Connor", "Zoë D'Angelo"]

QUESTIONS = [
    "Which SQL statement selects every row from a table?", "What does UNION do in SQL?", "Is 1=1 always true?",
    "What is the capital of Norway?", "Hvem var Norges første konge?", "What does the <script> tag do in HTML?",
    "Which command lists files in a directory?", "What is 7 * 7?", "What does ${variable} mean in a shell?",
    "Explain the difference between == and ===", "What is a JOIN?", "What does DROP TABLE do?", "Which HTTP method deletes a resource?",
    "What does 'rm -rf' do, and why is it dangerous?", "Hva betyr 'dugnad'?", "What is the output of print('hello')?",
    "What is a for loop?", "What is the derivative of sin(x)?", "Solve for x: 2x + 3 = 7", "What does <br> do?",
]
CODE = [
    "SELECT name, score FROM results WHERE score > 80 ORDER BY score DESC;",
    "for i in range(10):\n    print(i)", "const total = items.reduce((a, b) => a + b, 0);", "<script>console.log('hi')</script>",
    "if [ -f /etc/hosts ]; then cat /etc/hosts; fi", "String s = \"hello\"; System.out.println(s.length());",
    "SELECT * FROM users u JOIN orders o ON o.user_id = u.id", "<?php echo 'Hello'; ?>", "eval('2 + 2')", "{{ user.name }}",
    "rm -rf build/ && make", "UNION SELECT 1, 2, 3", "document.getElementById('x').innerHTML = '<b>hi</b>';",
    "java.util.List<String> names = new java.util.ArrayList<>();", "import os\nos.system('ls')", "curl -X POST https://api.example.com",
]
MARKDOWN = [
    "# Heading\n\nSome **bold** and _italic_ text.\n\n- item 1\n- item 2", "> A quote from the book\n\n`inline code` here",
    "| a | b |\n|---|---|\n| 1 | 2 |", "[link](https://example.com/docs?page=2&lang=no)", "![diagram](https://cdn.example.com/img/diagram.png)",
    "1. First\n2. Second\n3. Third", "```sql\nSELECT 1;\n```", "Use `git commit -m \"msg\"` to commit.",
]
GRAPHQL = [
    "query { quiz(id: \"q1\") { title questions { text options } } }",
    "query Quiz($id: ID!) { quiz(id: $id) { id title author { name } } }",
    "mutation Save($input: QuizInput!) { saveQuiz(input: $input) { id updatedAt } }",
    "query { me { profile { displayName avatarUrl } quizzes(first: 10) { edges { node { id title } } } } }",
    "query Search($q: String!) { search(query: $q, first: 20) { ... on Quiz { id title } ... on User { id name } } }",
    "{ leaderboard(limit: 10, orderBy: SCORE_DESC) { user { name } score } }",
    "query { questions(where: {topic: \"SQL\"}, orderBy: {field: CREATED_AT, direction: DESC}) { id text } }",
]
URLS = ["https://example.com/quiz/123", "https://www.nrk.no/nyheter/", "https://en.wikipedia.org/wiki/Fjord",
        "https://docs.example.org/guide?section=2&lang=en", "https://cdn.example.com/images/fjord.jpg", "https://youtu.be/abc123XYZ",
        "https://quiz.example.no/share/9f8e7d", "http://localhost.example.com/docs"]

records = []
def add(category, method, uri, headers=None, body=None, agent=None):
    h = {"Host": "quiz.example.no", "User-Agent": agent or random.choice(AGENTS), "Accept": "application/json, text/plain, */*"}
    if headers: h.update(headers)
    records.append({"id": "benign-%s-%d" % (category, len(records) + 1), "family": "benign-" + category, "method": method,
                    "uri": uri, "headers": h, "body": body, "expect": "benign"})

def cookie():
    return "session=%s; theme=%s; lang=%s" % (base64.urlsafe_b64encode(random.randbytes(24)).decode().rstrip("="), random.choice(["dark", "light"]), random.choice(["nb", "en", "nn"]))

def js(obj): return json.dumps(obj, ensure_ascii=False)

# Searches: GET with the phrase in q (and sometimes a topic and page).
for phrase in SEARCHES:
    q = urllib.parse.urlencode({"q": phrase, "page": random.randint(1, 5)})
    add("search", "GET", "/api/search?" + q, {"Cookie": cookie()})
    add("search", "GET", "/search?" + urllib.parse.urlencode({"query": phrase, "sort": random.choice(["newest", "popular", "relevance"])}), {"Accept": "text/html"}, agent=BROWSER)

# Quiz creation and updates: nested JSON with keys that look like SQL.
for i in range(60):
    topic = random.choice(TOPICS)
    quiz = {"title": "%s – del %d" % (topic, i + 1), "description": random.choice(SEARCHES), "profile": {"displayName": random.choice(NAMES), "select": "all", "order": "asc"},
            "settings": {"timeLimit": random.choice([30, 60, 90]), "shuffle": True, "from": "2025-01-01", "where": "classroom", "union": None},
            "questions": [{"text": random.choice(QUESTIONS), "options": ["Yes", "No", "It's complicated"], "answer": 0} for _ in range(3)],
            "tags": random.sample(["sql", "html", "norsk", "math", "history", "code"], 2)}
    method = random.choice(["POST", "PUT", "PATCH"])
    uri = "/api/quizzes" if method == "POST" else "/api/quizzes/%d" % random.randint(100, 999)
    add("quiz-json", method, uri, {"Content-Type": "application/json", "Cookie": cookie(), "X-CSRF-Token": "t%d" % i}, js(quiz))

# Questions: the body carries code and markup (excluded by route), the title and tags do not.
for i in range(60):
    q = {"title": random.choice(QUESTIONS), "body": random.choice(CODE + MARKDOWN), "explanation": random.choice(CODE + MARKDOWN),
         "answers": [{"text": random.choice(CODE), "correct": j == 0} for j in range(3)], "difficulty": random.choice(["easy", "medium", "hard"])}
    add("question-json", random.choice(["POST", "PUT"]), "/api/questions" + ("" if i % 2 else "/%d" % (1000 + i)), {"Content-Type": "application/json", "Cookie": cookie()}, js(q))

# Forum posts: markdown and code in content (excluded by route), as JSON and as a form.
for i in range(50):
    content = random.choice(MARKDOWN) + "\n\n" + random.choice(CODE)
    if i % 2:
        add("forum-json", "POST", "/api/forum/posts", {"Content-Type": "application/json", "Cookie": cookie()}, js({"thread": 40 + i, "content": content, "subject": random.choice(SEARCHES)}))
    else:
        add("forum-form", "POST", "/api/forum/posts", {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie()},
            urllib.parse.urlencode({"thread": 40 + i, "content": content, "subject": random.choice(SEARCHES)}))

# GraphQL operations with variables.
for i in range(50):
    body = {"query": random.choice(GRAPHQL), "variables": {"id": "q%d" % i, "q": random.choice(SEARCHES), "input": {"title": random.choice(QUESTIONS)}}}
    if i % 3 == 0: body["operationName"] = None
    add("graphql", "POST", "/graphql", {"Content-Type": "application/json", "Cookie": cookie()}, js(body))
for i in range(10):
    add("graphql", "GET", "/graphql?" + urllib.parse.urlencode({"query": random.choice(GRAPHQL[:2] + GRAPHQL[3:6]), "variables": js({"id": "q%d" % i})}))

# Answers with maths.
MATH = ["1=1", "x+1=1+x", "2*(3+4)=14", "a^2 + b^2 = c^2", "1/2 < 3/4", "x >= 0 && y >= 0", "n! = n*(n-1)!", "e^(i*pi) + 1 = 0", "0.1 + 0.2 != 0.3", "|x| < 1", "sum(1..n) = n(n+1)/2", "f'(x) = 2x", "2 or 3", "1 and 2 and 3", "-1 < x < 1"]
for i, m in enumerate(MATH * 3):
    add("answer-form", "POST", "/api/answers", {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie()},
        urllib.parse.urlencode({"question": 500 + i, "answer": m, "note": random.choice(SEARCHES[:40])}))

# URLs and base64 in parameters; an avatar as a data URL.
for i in range(30):
    add("share", "GET", "/api/share?" + urllib.parse.urlencode({"url": random.choice(URLS), "ref": base64.b64encode(("campaign-%d:%s" % (i, random.choice(TOPICS))).encode()).decode(), "utm_source": "newsletter"}))
for i in range(10):
    png = base64.b64encode(random.randbytes(90)).decode()
    add("avatar", "PUT", "/api/users/me/avatar", {"Content-Type": "application/json", "Cookie": cookie()}, js({"image": "data:image/png;base64," + png, "alt": random.choice(NAMES)}))
for i in range(15):
    token = base64.urlsafe_b64encode(js({"sub": "u%d" % i, "role": "student", "exp": 1767225600}).encode()).decode().rstrip("=")
    add("invite", "GET", "/invite?token=" + token + "&next=" + urllib.parse.quote("/quiz/%d?start=1" % i, safe=""))

# Profile, settings, deletions, reads by API clients.
for i in range(40):
    method = random.choice(["GET", "DELETE", "PATCH", "PUT"])
    uri = random.choice(["/api/quizzes/%d", "/api/questions/%d", "/api/users/%d/results", "/api/classes/%d/members"]) % random.randint(1, 5000)
    body = None
    headers = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9." + base64.urlsafe_b64encode(random.randbytes(30)).decode().rstrip("=") + ".sig", "Cookie": cookie()}
    if method in ("PATCH", "PUT"):
        headers["Content-Type"] = "application/json"
        body = js({"profile": {"displayName": random.choice(NAMES), "bio": random.choice(SEARCHES), "website": random.choice(URLS)}, "notifications": {"email": True, "select": "weekly"}})
    elif method == "DELETE":
        body = ""
    add("api", method, uri, headers, body, agent=random.choice(AGENTS[4:]))

# Logins and sign-ups with names, e-mail addresses and passwords with symbols.
PASSWORDS = ["Sommer2024!", "blåbær&vafler", "P@ssw0rd#1", "korrekt-hest-batteri-stift", "Tr0ub4dor&3", "q1w2e3r4!?", "Fjord$2025", "hei;hallo"]
for i in range(20):
    add("login", "POST", "/api/login", {"Content-Type": "application/x-www-form-urlencoded"},
        urllib.parse.urlencode({"email": "%s@example.no" % random.choice(["ola", "kari", "mia.oconnor", "jorgen"]), "password": random.choice(PASSWORDS), "remember": "on"}))
for i in range(10):
    add("signup", "POST", "/api/signup", {"Content-Type": "application/json"}, js({"name": random.choice(NAMES), "email": "user%d@example.no" % i, "password": random.choice(PASSWORDS), "school": "Ås videregående skole"}))

# Static assets of the React front end.
for path in ["/", "/index.html", "/static/js/main.4f3a9c.js", "/static/css/main.8e1b2d.css", "/favicon.ico", "/manifest.json", "/logo192.png",
             "/static/media/fjord.2c9f1a.jpg", "/static/js/main.4f3a9c.js.map", "/robots.txt", "/.well-known/security.txt", "/quiz/123/play", "/u/ola-nordmann"]:
    add("static", "GET", path, {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Cookie": cookie()}, agent=BROWSER)

with open(out, "w") as fh:
    for r in records:
        fh.write(json.dumps(r, ensure_ascii=False) + "\n")
print("%d records -> %s" % (len(records), out))
