/// Who is calling, as the identify phase established it: from a verified JWT, from an API
/// key, or nobody (anonymous callers are keyed by their real client address).
public struct Identity: Sendable, Equatable {
    public enum Method: String, Sendable, Equatable {
        case anonymous
        case jwt
        case apiKey
    }

    public var method: Method
    public var user: String?
    public var tenant: String?
    public var roles: [String]
    /// The API key's name (never the key itself), when that is how the caller came in.
    public var apiKey: String?

    public init(method: Method, user: String? = nil, tenant: String? = nil, roles: [String] = [], apiKey: String? = nil) {
        self.method = method
        self.user = user
        self.tenant = tenant
        self.roles = roles
        self.apiKey = apiKey
    }

    public static let anonymous = Identity(method: .anonymous)
}
