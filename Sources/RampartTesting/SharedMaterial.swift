public import Foundation

/// The public test material in `../shared` beside the checkout (or `RAMPART_SHARED_DIR`):
/// conformance vectors and their runners. It is never copied into the project; tests that
/// need it are skipped without it, and say so.
public enum SharedMaterial {
    /// The shared folder's `relativePath`, if it holds `requiredFile`; otherwise nil, after
    /// printing which suite is skipped.
    public static func locate(_ relativePath: String, requiredFile: String, skipping what: String) -> URL? {
        let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let root = ProcessInfo.processInfo.environment["RAMPART_SHARED_DIR"].map { URL(fileURLWithPath: $0) }
            ?? checkout.deletingLastPathComponent().appendingPathComponent("shared")
        let folder = relativePath.isEmpty ? root : root.appendingPathComponent(relativePath)
        guard FileManager.default.fileExists(atPath: folder.appendingPathComponent(requiredFile).path) else {
            print("\(what): ../shared/\(relativePath.isEmpty ? requiredFile : relativePath + "/" + requiredFile) not found; skipped")
            return nil
        }
        return folder
    }
}
